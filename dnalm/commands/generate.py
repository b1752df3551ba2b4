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
    p.add_argument("--prompt", default="", help="fixed start of every sequence (counts toward --length)")
    p.add_argument("--max-tries", type=options.positive_int, default=None,
                   help="most candidates per condition (default max(1000, 100*num))")


def run(args) -> int:
    import json

    import numpy as np

    from dnalm.errors import DnalmError
    from dnalm.utils import atomic_write
    from generate.conditioning import format_condition, load_generator
    from generate.sampling import sample, write_fasta

    device, dtype = options.setup_compute(args)
    model = load_generator(args.model, device=device)
    if dtype is not None:
        model.to(dtype=dtype)
    spec = model.conditioning
    conditions = args.condition or [None]
    if "all" in conditions:
        if spec is None:
            raise DnalmError("--condition all: the model has no condition tokens")
        conditions = [format_condition(c) for c in spec.all_conditions()]
    length = args.length
    if length is None:
        if spec is None or not spec.sequence_lengths[1]:
            raise DnalmError("--length is required for a model without a recorded training length")
        length = int(spec.sequence_lengths[1])
    motifs = [m.strip() for item in args.forbid_motif for m in item.split(",") if m.strip()]
    records, reports = [], []
    for ci, cond in enumerate(conditions):
        seed = None if args.seed is None else int(np.random.SeedSequence([args.seed, ci]).generate_state(1)[0] >> 1)
        seqs, rep = sample(
            model, cond, num=args.num, length=length, temperature=args.temperature, top_k=args.top_k,
            top_p=args.top_p, seed=seed, batch_size=args.batch_size, gc_min=args.gc_min, gc_max=args.gc_max,
            forbid_motifs=motifs, forbid_reverse_complement=args.forbid_reverse_complement, prompt=args.prompt,
            beam_size=args.beam_size, guidance=args.guidance, max_tries=args.max_tries, return_report=True, progress=not args.no_progress,
        )
        for w in rep.warnings:
            print(f"warning: {w}")
        print(rep.summary())
        reports.append(rep.to_dict())
        for s in seqs:
            gc = (s.count("G") + s.count("C")) / len(s)
            desc = f"condition={rep.condition} " if rep.condition else ""
            desc += f"guidance={args.guidance:g} " if args.guidance else ""
            records.append((f"gen{len(records) + 1:06d}", f"{desc}length={len(s)} gc={gc:.3f}", s))
    write_fasta(args.out, records)
    meta = {
        "model": str(args.model),
        "conditioning": spec.to_dict() if spec is not None else None,
        "length": length,
        "settings": {k: getattr(args, k) for k in ("num", "temperature", "top_k", "top_p", "seed", "beam_size", "guidance",
                                                   "gc_min", "gc_max", "prompt", "batch_size", "max_tries")},
        "forbid_motifs": motifs,
        "forbid_reverse_complement": args.forbid_reverse_complement,
        "reports": reports,
    }
    with atomic_write(str(args.out) + ".json") as fh:
        json.dump(meta, fh, indent=2)
    print(f"wrote {len(records)} sequences to {args.out} (+ {args.out}.json)")
    return 0
