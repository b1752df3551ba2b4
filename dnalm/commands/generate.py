"""Generate DNA sequences from a (conditional) model: exact length, A/C/G/T only, optional constraints.

Sampling is batched through the inference cache and reproducible with --seed; --beam-size runs beam search
instead. GC bounds and forbidden motifs are met by rejection (reported per reason) and impossible requests are
errors. Writes FASTA with the condition in each header (condition=NAME=CLASS,...) and a sidecar OUT.json with
the generator's bin edges and the rejection report (used by `dnalm evaluate-cre`).
"""

from __future__ import annotations

from dnalm.commands import options

MAX_NUM = 10_000_000  # sequences per condition (written as they come; the bound is against typos like 1e12)
MAX_BEAMS = 1024  # beams hold a cache each: memory grows linearly with the beam count


def add_arguments(p) -> None:
    options.add_model_options(p, help="generator folder (dnalm finetune-generator), any model folder, or a preset",
                              batch_size=64, batch_help="sequences decoded in parallel")
    p.add_argument("--condition", action="append", default=[], metavar="A=4,B=0",
                   help="requested classes (repeatable: one set per condition; 'all' = every class combination)")
    p.add_argument("--num", type=options.int_in(1, MAX_NUM), required=True,
                   help=f"sequences per condition (1..{MAX_NUM:,})")
    p.add_argument("--length", type=options.positive_int, default=None,
                   help="sequence length in nt (default: the generator's training length)")
    options.add_output_options(p, "file", "output FASTA (the settings and rejection report go to OUT.json beside it)")
    p.add_argument("--temperature", type=options.non_negative_float, default=1.0,
                   help="sampling temperature >= 0 (0 = greedy; default 1)")
    p.add_argument("--top-k", type=options.non_negative_int, default=None, help="sample among the k likeliest (0 = off)")
    p.add_argument("--top-p", type=options.float_in(0.0, 1.0, lo_open=True), default=None,
                   help="nucleus sampling: smallest set with this probability mass, in (0, 1]")
    p.add_argument("--seed", type=options.non_negative_int, default=None,
                   help="random seed (same seed and settings -> same output)")
    p.add_argument("--beam-size", type=options.int_in(1, MAX_BEAMS), default=None,
                   help=f"beam search with this many beams, 1..{MAX_BEAMS} (returns the best --num)")
    p.add_argument("--guidance", type=options.non_negative_float, default=0.0,
                   help="guidance weight w >= 0: sharpen the condition against the other classes (default 0)")
    p.add_argument("--gc-min", type=options.probability, default=None, help="lowest GC fraction (inclusive)")
    p.add_argument("--gc-max", type=options.probability, default=None, help="highest GC fraction (inclusive)")
    p.add_argument("--forbid-motif", action="append", default=[], metavar="SEQ",
                   help="motif that must not occur (repeatable or comma-separated)")
    p.add_argument("--forbid-reverse-complement", action="store_true", help="also forbid reverse complements")
    prompt = p.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", default="", help="fixed start of every sequence (counts toward --length)")
    prompt.add_argument("--prompts", metavar="FILE",
                        help="prompts from a file: FASTA, CSV/TSV with a sequence column, or BED (needs --fasta); "
                        "--num sequences per prompt and condition, headers with prompt=NAME")
    p.add_argument("--fasta", help="genome FASTA for BED --prompts")
    p.add_argument("--sequence-column", default="sequence", help="sequence column of a --prompts table (default: sequence)")
    p.add_argument("--max-tries", type=options.positive_int, default=None,
                   help="most candidates per condition (default max(1000, 100*num))")


def run(args) -> int:
    from generate.batch import generate_to_fasta
    from generate.conditioning import load_generator

    prompts = None
    if args.prompts:
        from dnalm.data.sequences import read_sequence_input

        records = read_sequence_input(args.prompts, args.fasta, args.sequence_column, label_columns=None)
        prompts = list(zip(records.names, records.sequences))
    device, dtype = options.setup_compute(args)
    model = load_generator(args.model, device=device)
    if dtype is not None:
        model.to(dtype=dtype)
    _, meta = generate_to_fasta(
        model, args.out, args.condition, num=args.num, length=args.length, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, seed=args.seed, beam_size=args.beam_size, guidance=args.guidance,
        gc_min=args.gc_min, gc_max=args.gc_max, forbid_motifs=args.forbid_motif,
        forbid_reverse_complement=args.forbid_reverse_complement, prompt=args.prompt, batch_size=args.batch_size,
        max_tries=args.max_tries, progress=not args.no_progress, model_name=str(args.model), echo=print,
        return_records=False, prompts=prompts,
    )
    print(f"wrote {meta['n_sequences']:,} sequences to {args.out} (+ {args.out}.json)")
    return 0
