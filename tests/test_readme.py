"""The README cannot drift: it is the assembled docs, every `dnalm` command in it parses with the real parser (flags,
bounded values and --set keys exist), and every Python snippet runs on tiny inputs laid out at the paths it names.

Skip mechanism: ``SHRINK`` replaces real-run sizes by tiny ones (e.g. ``num_samples``); ``SKIP`` maps a snippet's first code line to the reason it is not executed here (long pipeline
stages, data the tests do not carry, an optional extra); a skipped Python snippet is still compiled and its imports
run. A snippet that stops matching any README block fails the test, so the list cannot go stale.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# first line of a Python snippet that is not an import -> why it is not executed here (it is still compiled and its imports run)
SKIP = {
    'lm = AutoModelForCausalLM.from_pretrained("models/hybrid")': "needs the [hf] extra and imported models "
    "(tests/test_import_model.py runs it)",
    'bed = read_bed("basset_samples.bed", label_columns="col7")      # BEND: 7th column "1,4,5,10" -> [1, 4, 5, 10]':
    "BEND's 164-class Basset intervals on hg38 (tests/test_datasets.py reads them)",
    'task = load_task("../shared/data/gue/prom/prom_core_tata")           # Task: train/dev/test, kind, metric':
    "fine-tunes on GUE for minutes (tests/test_finetune_e2e.py runs the same calls)",
    'model = generate.load_generator("results/generator")           # model.conditioning holds the spec':
    "needs a trained conditional generator (tests/test_generate_cli.py trains one)",
    'records, sidecar = generate.generate_to_fasta(model, "generated.fa", ["expression=0", "expression=4"], num=100,':
    "continues the snippet above (a trained generator; tests/test_generate_cli.py runs it)",
    'model = SequenceModel.load("results/ft_tata/model")': "needs a fine-tuned model (tests/test_explain_attribution.py "
    "and examples/09_explain.py make the same calls)",
}


# sizes a snippet uses for real work, shrunk for the test run (literal text -> replacement); the rest runs as written
SHRINK = {
    "num_samples=100_000": "num_samples=64",
    "num_workers=4": "num_workers=0",
}


def blocks(lang: str) -> list[tuple[int, str]]:
    """(line number, body) of every fenced block of ``lang`` in README.md."""
    text = README.read_text()
    out = []
    for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.DOTALL | re.MULTILINE):
        if m.group(1) == lang:
            out.append((text[: m.start()].count("\n") + 1, m.group(2)))
    return out


def first_line(body: str) -> str:
    """The snippet's first line that is not an import or a comment (its key in ``SKIP``)."""
    return next(line for line in body.splitlines()
                if line.strip() and not re.match(r"^(#|import |from \S+ import )", line)).rstrip()


def test_readme_is_the_assembled_docs():
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_readme", ROOT / "docs" / "build_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.assemble() == README.read_text(), "README.md is stale: run python docs/build_readme.py"


def test_skip_list_matches_readme_blocks():
    firsts = {first_line(b) for _, b in blocks("python")}
    stale = [k for k in SKIP if k not in firsts]
    assert not stale, f"SKIP entries that match no README snippet: {stale}"
    text = README.read_text()
    assert all(k in text for k in SHRINK), "SHRINK entries that match no README text"


# ------------------------------------------------------------------------------------------------ commands
def dnalm_commands() -> list[tuple[int, str]]:
    """Every `dnalm ...` command line of the bash blocks (continuations joined, comments and [optional] parts
    dropped, shell variables set earlier in the block substituted)."""
    out = []
    for line_no, body in blocks("bash"):
        text = re.sub(r"\\\n\s*", " ", body)
        env: dict[str, str] = {}
        for line in text.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            m = re.match(r"^([A-Z_]+)=(.*)$", line)
            if m:
                env[m.group(1)] = m.group(2).strip('"')
                continue
            if line.startswith("dnalm "):
                line = re.sub(r"\[[^\]]*\]", "", line)  # usage-style [--optional ...] parts
                for k, v in env.items():
                    line = line.replace(f"${k}", v)
                out.append((line_no, line))
    return out


COMMANDS = dnalm_commands()


def test_readme_documents_commands():
    assert len(COMMANDS) >= 15


def _settings_class(name: str):
    """The settings dataclass a command's --set keys belong to (None where they route elsewhere)."""
    if name == "finetune":
        from finetune.lightning import FinetuneConfig

        return FinetuneConfig
    if name == "finetune-generator":
        from generate.training import GeneratorTrainConfig

        return GeneratorTrainConfig
    if name == "evaluate-cre":
        from generate.evaluate import EvalConfig

        return EvalConfig
    return None


@pytest.mark.parametrize("line_no, command", COMMANDS, ids=[f"L{n}:{c.split()[1]}" for n, c in COMMANDS])
def test_readme_command_parses(line_no, command, capsys, world, monkeypatch):
    """Flags exist, values pass their bounds, and --set keys name real settings."""
    from dnalm.cli import build_parser
    from dnalm.commands import options

    argv = shlex.split(command)[1:]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"README line {line_no}: `{command}` does not parse: {capsys.readouterr().err.strip()}")
    cls = _settings_class(args.command)
    if cls is not None and getattr(args, "set", None):
        sets = [s for s in args.set if not s.startswith("arch.")]
        options.load_settings(cls, argparse_namespace(set=sets))
    if args.command == "pretrain" and (ROOT / args.config).exists():
        from dnalm.pretrain.config import load_config

        monkeypatch.chdir(world)  # the config names results/genome/sacCer_R64.fa.gz
        load_config(ROOT / args.config, list(args.set))


def argparse_namespace(**kw):
    import argparse

    return argparse.Namespace(config=None, **kw)


@pytest.mark.parametrize("command", [c for _, c in COMMANDS if c.split()[1] == "info" and "models/" not in c])
def test_readme_info_commands_run(command):
    from dnalm.cli import main

    assert main(shlex.split(command)[1:]) == 0


# ------------------------------------------------------------------------------------------------ Python
def _write_genome(path: Path, chroms: dict[str, int], seed: int) -> None:
    import pysam

    rng = np.random.default_rng(seed)
    plain = path.with_suffix("")  # x.fa.gz -> x.fa
    plain.parent.mkdir(parents=True, exist_ok=True)
    with open(plain, "w") as fh:
        fh.writelines(f">{name}\n{''.join(rng.choice(list('ACGT'), n))}\n" for name, n in chroms.items())
    pysam.tabix_compress(str(plain), str(path), force=True)
    pysam.faidx(str(path))
    plain.unlink()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny stand-ins at the paths the README's snippets name (a run's model, the demo genome, variants)."""
    import pysam
    import torch

    from dnalm.models import build_model

    d = tmp_path_factory.mktemp("readme")
    roman = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII", "XIII", "XIV", "XV", "XVI"]
    yeast = {f"chr{r}": 56000 if r == "VI" else 2000 for r in roman}
    _write_genome(d / "results" / "genome" / "sacCer_R64.fa.gz", yeast, 0)
    for alias in ("genome/sacCer_R64.fa.gz", "sacCer_R64.fa.gz", "genome.fa.gz"):
        _write_genome(d / alias, yeast, 0)
    _write_genome(d / "ecoli.fna.gz", {"NC_000913.3": 5000}, 1)
    torch.manual_seed(0)
    build_model("hybridna-tiny", d_model=16, n_layer=2, attn_layer_idx=[1], d_intermediate=32,
                mamba2={"d_state": 8, "headdim": 8, "chunk_size": 64},
                attention={"n_heads": 2, "n_kv_heads": 2}).save_pretrained(d / "runs" / "demo_pretrain" / "model")
    from dnalm import Genome

    g = Genome(d / "genome.fa.gz")
    ref = g.fetch("chrVI", 54999, 55000)
    alt = "A" if ref != "A" else "C"
    vcf = d / "variants.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n##contig=<ID=chrVI,length=56000>\n"
                   "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   f"chrVI\t55000\tv1\t{ref}\t{alt}\t.\t.\t.\n")
    pysam.tabix_index(str(vcf), preset="vcf", force=True)
    table = d / "GUE" / "prom" / "prom_300_all"
    table.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = ["sequence,label"] + [f"{''.join(rng.choice(list('ACGT'), 30))},{i % 2}" for i in range(8)]
    (table / "train.csv").write_text("\n".join(rows) + "\n")
    return d


PY_BLOCKS = blocks("python")


@pytest.mark.parametrize("line_no, body", PY_BLOCKS, ids=[f"L{n}" for n, _ in PY_BLOCKS])
def test_readme_python_snippet_runs(line_no, body, world, monkeypatch):
    compile(body, f"README.md:{line_no}", "exec")
    for text, tiny in SHRINK.items():
        body = body.replace(text, tiny)
    code = compile(body, f"README.md:{line_no}", "exec")
    reason = SKIP.get(first_line(body))
    if reason:
        imports = "\n".join(line for line in body.splitlines() if re.match(r"^(import|from) \S+", line))
        exec(compile(imports, f"README.md:{line_no} (imports)", "exec"), {})  # noqa: S102 -- the snippet is the test
        pytest.skip(reason)
    monkeypatch.chdir(world)
    import torch

    torch.manual_seed(0)
    exec(code, {"__name__": "__readme__"})  # noqa: S102 -- running the README snippet is the test
