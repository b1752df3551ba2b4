"""The four CRE commands end to end on a small table, and their error exits."""

import json

import numpy as np
import pytest
import torch

from dnalm.cli import main
from generate.sampling import read_fasta


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    rng = np.random.default_rng(0)
    d = tmp_path_factory.mktemp("cre")
    rows = ["id,seq,activity"]
    for i in range(300):
        k = int(rng.integers(0, 3))
        s = "".join(rng.choice(list("ACGT"), 30))
        s = "TGACTCA" * k + s[7 * k :]
        rows.append(f"r{i},{s},{k + rng.normal(0, 0.2):.4f}")
    rows.append("bad,ACGTXACGT,1.0")  # skipped and reported
    (d / "t.csv").write_text("\n".join(rows) + "\n")
    return d


@pytest.fixture(scope="module")
def generator(table):
    """A generator fine-tuned by the CLI (a few steps from a random transformer-tiny), and the command's output."""
    import contextlib
    import io

    buf = io.StringIO()
    n = torch.get_num_threads()
    with contextlib.redirect_stdout(buf):
        rc = main(["finetune-generator", "--model", "transformer-tiny", "--input", str(table / "t.csv"),
                   "--sequence-column", "seq", "--label-columns", "activity", "--set", "n_bins=3", "--out",
                   str(table / "gen"), "--set", "max_steps=12", "--set", "eval_every=6", "--batch-size", "16", "--no-progress",
                   "--threads", "1"])
    torch.set_num_threads(n)
    assert rc == 0
    return table / "gen", buf.getvalue()


def test_cli_chain(table, generator, capsys):
    d = table
    common = ["--input", str(d / "t.csv"), "--sequence-column", "seq"]
    out = generator[1]
    assert "skipped 1 row(s): line 302" in out and "activity=2" in out
    assert (d / "gen" / "validation_by_condition.tsv").exists()
    cfg = json.loads((d / "gen" / "config.json").read_text())
    assert cfg["extra"]["conditioning"]["properties"][0]["tokens"] == ["<activity=0>", "<activity=1>", "<activity=2>"]

    rc = main(["generate", "--model", str(d / "gen"), "--condition", "activity=0", "--condition", "activity=2",
               "--num", "6", "--seed", "1", "--gc-min", "0.2", "--forbid-motif", "AAAA", "--out", str(d / "g.fa"),
               "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "activity=2: 6/6 sequences" in out
    recs = read_fasta(d / "g.fa")
    assert len(recs) == 12 and all(len(s) == 30 and "AAAA" not in s for _, _, s in recs)  # length = training length
    assert recs[0][1].startswith("condition=activity=0") and recs[-1][1].startswith("condition=activity=2")
    side = json.loads((d / "g.fa.json").read_text())
    assert side["conditioning"]["properties"][0]["name"] == "activity" and len(side["reports"]) == 2
    main(["generate", "--model", str(d / "gen"), "--condition", "activity=0", "--condition", "activity=2",
          "--num", "6", "--seed", "1", "--gc-min", "0.2", "--forbid-motif", "AAAA", "--out", str(d / "g2.fa"),
          "--no-progress"])
    assert read_fasta(d / "g2.fa") == recs  # same seed, same output

    rc = main(["train-oracle", *common, "--label-columns", "activity", "--out", str(d / "oracle"), "--set", "max_epochs=2",
               "--set", "arch.channels=16", "--set", "arch.dilated_layers=1", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "spearman=" in out
    assert json.loads((d / "oracle" / "oracle.json").read_text())["report"]["heldout"]["activity"]["n"] == 30

    rc = main(["evaluate-cre", "--generated", str(d / "g.fa"), "--oracle", str(d / "oracle"), "--reference",
               str(d / "t.csv"), "--sequence-column", "seq", "--out", str(d / "ev"), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "Mann-Whitney" in out
    summary = json.loads((d / "ev" / "summary.json").read_text())
    assert summary["high_vs_low"]["activity"]["n_high"] == 6 and summary["n_reference"] == 300


@pytest.mark.parametrize(
    "extra, msg",
    [
        (["--condition", "activity=3"], "trained with classes 0..2"),
        (["--condition", "expression=1"], "not trained with property 'expression'"),
        (["--condition", "activity=1", "--length", "9000"], "maximum length"),
        (["--condition", "activity=1", "--gc-min", "0.8", "--gc-max", "0.2"], "gc-min 0.8 is above"),
        (["--condition", "activity=1", "--gc-min", "1.0", "--max-tries", "20"], "only 0 of 2 sequences"),
    ],
)
def test_cli_generate_errors(table, generator, capsys, extra, msg):
    rc = main(["generate", "--model", str(generator[0]), "--num", "2", "--out", str(table / "bad.fa"),
               "--no-progress", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and "Traceback" not in err
    assert not (table / "bad.fa").exists()  # nothing half-written


def test_parse_edges():
    from dnalm.commands.finetune_generator import parse_edges
    from dnalm.errors import ConfigError

    assert parse_edges(["a=1,2.5", "b=0"]) == {"a": [1.0, 2.5], "b": [0.0]}
    for bad in (["a"], ["a="], ["a=1,x"]):
        with pytest.raises(ConfigError, match="--edges"):
            parse_edges(bad)


def _without_timings(obj):
    """The sidecar JSON without its wall-clock ``seconds`` entries (the only part that differs between runs)."""
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if k != "seconds"}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


def test_python_call_gives_the_cli_bytes(table, generator, capsys):
    """`dnalm generate` is generate.batch.generate_to_fasta: same seed and settings -> the same FASTA bytes."""
    from generate.batch import condition_seed, generate_to_fasta
    from generate.conditioning import load_generator

    d, gen = table, generator[0]
    rc = main(["generate", "--model", str(gen), "--condition", "activity=0", "--condition", "activity=2", "--num", "3",
               "--seed", "5", "--gc-min", "0.1", "--forbid-motif", "AAAA,CCCC", "--out", str(d / "cli.fa"),
               "--no-progress"])
    assert rc == 0
    records, meta = generate_to_fasta(
        load_generator(gen), d / "py.fa", ["activity=0", "activity=2"], num=3, seed=5, gc_min=0.1,
        forbid_motifs=["AAAA,CCCC"], progress=False, model_name=str(gen),
    )
    assert (d / "py.fa").read_bytes() == (d / "cli.fa").read_bytes()
    cli_side = json.loads((d / "cli.fa.json").read_text())
    assert _without_timings(json.loads((d / "py.fa.json").read_text())) == _without_timings(cli_side)
    assert _without_timings(meta) == _without_timings(cli_side)
    assert [r[0] for r in records] == [f"gen{i:06d}" for i in range(1, 7)]
    assert meta["forbid_motifs"] == ["AAAA", "CCCC"]
    # per-condition seeds: independent of each other, fixed by (seed, index)
    assert condition_seed(5, 0) != condition_seed(5, 1) and condition_seed(5, 1) == condition_seed(5, 1)
    assert condition_seed(None, 3) is None


def test_refuses_to_condition_a_generator_twice(generator):
    from dnalm.errors import DnalmError
    from generate.conditioning import load_generator
    from generate.training import finetune_generator

    with pytest.raises(DnalmError, match="already a conditional generator"):
        finetune_generator(load_generator(generator[0]), ["ACGT"] * 4, np.zeros((4, 1)), ["x"], "unused")
