"""End-to-end: `dnalm finetune`, `dnalm embed`, `dnalm benchmark` on tiny models and real sample data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import dnalm
from dnalm.cli import main
from dnalm.utils import data_dir

DATA = data_dir()
FAST = ["--set", "max_steps=3", "--set", "val_every=2", "--set", "batch_size=8", "--set", "progress_bar=false",
        "--set", "warmup_steps=1"]


def need(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data {path} not found (set DNALM_DATA)")
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = dnalm.build_model("transformer-tiny", d_model=32, n_layer=2, attention={"n_heads": 2, "rotary": True})
    path = tmp_path_factory.mktemp("models") / "tiny"
    model.save_pretrained(path)
    return path


def test_finetune_cli_writes_metrics_and_a_reloadable_model(tiny_model, tmp_path, capsys):
    from finetune.heads import SequenceModel
    from finetune.tasks import load_task

    data = need("dnabert2_sample_data")
    out = tmp_path / "ft"
    rc = main(["finetune", "--model", str(tiny_model), "--task", str(data), "--out", str(out), "--pooling", "rc_echo",
               *FAST])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "dnabert2_sample_data" and metrics["metric"] == "mcc"
    assert -1 <= metrics["test"]["mcc"] <= 1 and metrics["steps"] == 3
    assert metrics["rows"] == {"train": 15, "dev": 15, "test": 15}
    history = pd.read_csv(out / "history.csv")
    logged = pd.read_csv(out / "logs" / "csv" / "metrics.csv")  # Lightning's CSV logger, as pretraining
    assert len(logged) > 0 and any(c.startswith("val/") for c in logged.columns)
    # step 0: the head fitted on frozen features (the first checkpoint candidate); then every 2 steps; step 3 ends it
    assert history["step"].tolist() == [0, 2]
    # the saved model reproduces the written test predictions
    model = SequenceModel.load(out / "model")
    assert model.config.pooling == "rc_echo" and model.config.task == "dnabert2_sample_data"
    from finetune.evaluate import predict_scores

    scores = predict_scores(model, load_task(str(data)).test, progress=False)
    preds = pd.read_csv(out / "test_predictions.csv")
    assert np.allclose(preds["score"].to_numpy(), scores, atol=1e-5)
    assert "dev_mcc" in history.columns


def test_finetune_cli_reports_bad_input_cleanly(tiny_model, tmp_path, capsys):
    rc = main(["finetune", "--model", str(tiny_model), "--task", "csv:/nonexistent/x.csv", "--out", str(tmp_path)])
    assert rc == 2
    assert "no such file" in capsys.readouterr().err
    rc = main(["finetune", "--model", str(tiny_model), "--task", str(need("dnabert2_sample_data")), "--out",
               str(tmp_path), "--set", "max_stepz=3"])
    err = capsys.readouterr().err
    assert rc == 2 and "max_stepz: unknown key; did you mean 'max_steps'?" in err and "Traceback" not in err


def test_genomic_benchmarks_slices_refused_when_a_split_has_one_class(tiny_model, tmp_path):
    """Inside the shared genome slices every dev interval of demo_human_or_worm is a worm one: the run is refused
    up front, naming the split, instead of reporting metrics that are undefined (Task.check_learnable)."""
    from dnalm.errors import InputError
    from finetune.lightning import FinetuneConfig, finetune

    gb = need("genomic_benchmarks", "demo_human_or_worm")
    worm = need("model_organisms_1pct", "C.elegans.fa.gz")
    human = need("human_hg38_chr22_segment", "hg38_chr22_32000000_32300000.fa")
    with pytest.raises(InputError, match="every dev label is 'worm'"):
        finetune(tiny_model, f"gb:{gb}?genome.worm={worm}&genome.human={human}@chr22:32000000",
                 FinetuneConfig(max_steps=2, val_every=2, batch_size=16, freeze_backbone=True, progress_bar=False,
                                save_model=False),
                 out_dir=tmp_path / "gb")
    assert not (tmp_path / "gb").exists() or not any((tmp_path / "gb").iterdir())


def test_embed_cli_table_and_bed(tiny_model, tmp_path):
    import pysam
    from safetensors.numpy import load_file

    data = need("dnabert2_sample_data")
    out = tmp_path / "emb.npz"
    assert main(["embed", "--model", str(tiny_model), "--input", str(data / "test.csv"), "--out", str(out)]) == 0
    with np.load(out, allow_pickle=False) as z:
        assert z["embeddings"].shape == (15, 32)
        assert z["labels"].tolist() == pd.read_csv(data / "test.csv")["label"].tolist()
    # BED + genome, per base, safetensors
    rng = np.random.default_rng(0)
    fa = tmp_path / "g.fa"
    fa.write_text(">chrZ\n" + "".join(rng.choice(list("ACGT"), 500)) + "\n")
    pysam.faidx(str(fa))
    bed = tmp_path / "r.bed"
    bed.write_text("chrZ\t10\t40\t.\t0\t+\t1,3\nchrZ\t100\t120\t.\t0\t-\t2\n")
    out2 = tmp_path / "emb.safetensors"
    assert main(["embed", "--model", str(tiny_model), "--input", str(bed), "--fasta", str(fa), "--out", str(out2),
                 "--per-token", "--pooling", "echo"]) == 0
    z = load_file(str(out2))
    assert z["embeddings"].shape == (2, 30, 32) and z["lengths"].tolist() == [30, 20]
    assert z["labels"].shape == (2, 4) and z["labels"][0].tolist() == [0, 1, 0, 1]
    assert np.all(z["embeddings"][1, 20:] == 0)


def test_benchmark_cli_writes_table_markdown_and_plot(tiny_model, tmp_path):
    data = need("dnabert2_sample_data")
    out = tmp_path / "bench"
    rc = main(["benchmark", "--model", str(tiny_model), "--suite", "gue", "--data", str(data), "--out", str(out),
               *FAST, "--set", "kmer_k=1,2,3"])
    assert rc == 0
    df = pd.read_csv(out / "results.csv")
    assert set(df["method"]) == {"k-mer (k=1..3) + logistic", "frozen mean-pooled embedding + logistic",
                                 "fine-tuned (mean pooling)"}
    assert (df["status"] == "ok").all() and df["metric"].eq("mcc").all()
    md = (out / "results.md").read_text()
    assert "| dnabert2_sample_data | mcc | 15 / 15 / 15 |" in md
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_benchmark_worker_processes_give_the_same_rows(tiny_model, tmp_path):
    data = need("dnabert2_sample_data")
    args = ["benchmark", "--model", str(tiny_model), "--suite", "gue", "--data", str(data), "--set", "probe=false",
            "--set", "run_finetune=false", "--set", "kmer_k=1,2,3", "--set", "progress_bar=false"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    assert main([*args, "--out", str(tmp_path / "two"), "--set", "workers=2"]) == 0
    one = pd.read_csv(tmp_path / "one" / "results.csv").drop(columns=["seconds"])
    two = pd.read_csv(tmp_path / "two" / "results.csv").drop(columns=["seconds"])
    pd.testing.assert_frame_equal(one, two)


def test_shipped_benchmark_configs_are_valid():
    from finetune.benchmark import BenchmarkConfig
    from dnalm.config import from_dict
    from finetune.config import FinetuneConfig

    files = sorted((Path(__file__).resolve().parents[1] / "config" / "benchmark").glob("*.yaml"))
    assert files
    for f in files:
        cfg = BenchmarkConfig.load(f)
        from_dict(FinetuneConfig, cfg.finetune, prefix="finetune")
        for name, extra in cfg.task_finetune.items():
            from_dict(FinetuneConfig, {**cfg.finetune, **extra}, prefix=f"task_finetune.{name}")
