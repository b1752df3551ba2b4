"""Pretraining: strict config, batches by step, optimiser groups and schedule, outputs, exact resume, DDP on CPU."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dnalm.errors import ConfigError
from dnalm.pretrain.config import PretrainConfig, config_from_dict, load_config

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "config" / "pretrain" / "tiny.yaml"
DEMO = ROOT / "config" / "pretrain" / "demo.yaml"


# ---------------------------------------------------------------------------------------------------- fixtures
def write_genome(path: Path, seed: int = 0, sizes=(6000, 5000, 3000, 3000)) -> Path:
    """A small FASTA (chr1..chr4) from an order-2 Markov chain with a repeated motif and an N run in chr1."""
    rng = np.random.default_rng(seed)
    trans = rng.dirichlet(np.full(4, 0.3), size=16)  # sharp order-2 transitions: learnable structure
    motif = "".join(rng.choice(list("ACGT"), 40))
    with open(path, "w") as fh:
        for i, n in enumerate(sizes, start=1):
            s = [0, 1]
            for _ in range(n - 2):
                s.append(int(rng.choice(4, p=trans[s[-2] * 4 + s[-1]])))
            seq = ["ACGT"[b] for b in s]
            for pos in range(300, n - 100, 700):
                seq[pos : pos + 40] = motif
            if i == 1:
                seq[1000:1100] = "N" * 100
            text = "".join(seq)
            fh.write(f">chr{i}\n")
            fh.writelines(text[j : j + 60] + "\n" for j in range(0, n, 60))
    return path


@pytest.fixture(scope="module")
def genome(tmp_path_factory) -> Path:
    return write_genome(tmp_path_factory.mktemp("genome") / "toy.fa")


def tiny_raw(genome: Path, **changes) -> dict:
    raw = yaml.safe_load(TINY.read_text())
    raw["data"]["genomes"] = [{"path": str(genome)}]
    raw["data"]["validation_chroms"] = ["chr3"]
    raw["data"]["test_chroms"] = ["chr4"]
    for dotted, value in changes.items():
        node = raw
        *parents, last = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return raw


def tiny(genome: Path, *sets: str, **changes) -> PretrainConfig:
    return config_from_dict(tiny_raw(genome, **changes), list(sets))


# ---------------------------------------------------------------------------------------------------- config
def test_shipped_configs_load(genome):
    cfg = load_config(TINY, [f"data.genomes.0.path={genome}", "data.validation_chroms=[chr3]", "data.test_chroms=[chr4]"])
    assert cfg.total_steps == 8
    assert [s.batch_size for s in cfg.stages] == [8, 4]  # derived from tokens_per_step
    assert {s.length * s.batch_size for s in cfg.stages} == {cfg.tokens_per_step}
    for path in (DEMO, ROOT / "config" / "pretrain" / "pipeline.yaml"):
        demo = load_config(path, [f"data.genomes.0.path={genome}", "data.validation_chroms=[chr3]",
                                  "data.test_chroms=[chr4]"])
        assert demo.model.preset == "hybridna-tiny"
        assert demo.lm_config().layer_pattern.count("attention") == 1
        assert demo.lm_config().n_layer == 8 and demo.lm_config().d_model == 128


def test_yaml_round_trip(genome, tmp_path):
    cfg = tiny(genome)
    path = tmp_path / "c.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg


@pytest.mark.parametrize(
    "change, key",
    [
        ({"optim__lrr": 0.1}, "optim.lrr"),
        ({"trainer__devises": 2}, "trainer.devises"),
        ({"bogus": 1}, "bogus"),
        ({"stages": [{"steps": 2, "length": 32, "bach_size": 8}]}, "stages[0].bach_size"),
        ({"data__genomes": [{"path": "x.fa", "wieght": 1}]}, "data.genomes[0].wieght"),
    ],
)
def test_unknown_key_is_named(genome, change, key):
    with pytest.raises(ConfigError) as exc:
        config_from_dict(tiny_raw(genome, **change))
    assert key in str(exc.value) and "unknown key" in str(exc.value)


def test_unknown_key_suggests_close_name(genome):
    with pytest.raises(ConfigError, match=r"did you mean 'optim.lr'"):
        config_from_dict(tiny_raw(genome, optim__lrr=0.1))


@pytest.mark.parametrize(
    "change, key, expected",
    [
        ({"trainer__devices": "two"}, "trainer.devices", "integer"),
        ({"optim__lr": "fast"}, "optim.lr", "number"),
        ({"trainer__progress_bar": "yes"}, "trainer.progress_bar", "boolean"),
        ({"data__validation_chroms": "chr3"}, "data.validation_chroms", "list of string"),
        ({"stages": {"steps": 3}}, "stages", "list of mapping"),
        ({"trainer__devices": 1.5}, "trainer.devices", "integer"),
    ],
)
def test_wrong_type_names_key_and_type(genome, change, key, expected):
    with pytest.raises(ConfigError) as exc:
        config_from_dict(tiny_raw(genome, **change))
    assert key in str(exc.value) and expected in str(exc.value)


def test_yaml_exponent_without_dot_is_a_number(genome):
    assert tiny(genome, optim__lr="1e-3").optim.lr == 1e-3


def test_missing_genome_file_is_named(genome, tmp_path):
    missing = tmp_path / "nope.fa.gz"
    with pytest.raises(ConfigError, match=rf"data.genomes\[0\].path: genome file {missing} not found"):
        config_from_dict(tiny_raw(genome, data__genomes=[{"path": str(missing)}]))


def test_length_and_batch_divisibility(genome):
    with pytest.raises(ConfigError, match=r"stages\[1\].length: 48 does not divide tokens_per_step=256"):
        tiny(genome, stages=[{"steps": 2, "length": 32}, {"steps": 2, "length": 48}])
    # a length that is not a multiple of the Mamba2 chunk (16 here) is fine: the scan does not pad
    assert tiny(genome, tokens_per_step=0, stages=[{"steps": 2, "length": 40, "batch_size": 4}]).stages[0].length == 40
    with pytest.raises(ConfigError, match=r"stages\[1\].batch_size: .* tokens per step"):
        tiny(genome, tokens_per_step=0, stages=[{"steps": 2, "length": 32, "batch_size": 4},
                                                 {"steps": 2, "length": 64, "batch_size": 4}])
    with pytest.raises(ConfigError, match=r"stages\[0\].batch_size: 5 x length 32 != tokens_per_step 256"):
        tiny(genome, stages=[{"steps": 2, "length": 32, "batch_size": 5}])
    with pytest.raises(ConfigError, match=r"stages\[0\].batch_size: global batch 4 is not divisible by the 3"):
        tiny(genome, "trainer.devices=3", tokens_per_step=0, stages=[{"steps": 2, "length": 32, "batch_size": 4}])
    assert tiny(genome, data__val_length=24).data.val_length == 24
    with pytest.raises(ConfigError, match=r"longer than the model's max_length"):
        tiny(genome, "model.preset=transformer-tiny", "model.overrides={}", tokens_per_step=16384,
             stages=[{"steps": 1, "length": 16384}])


def test_bad_values_name_the_key(genome):
    with pytest.raises(ConfigError, match="trainer.strategy"):
        tiny(genome, "trainer.strategy=horovod")
    with pytest.raises(ConfigError, match="data.rc_prob"):
        tiny(genome, "data.rc_prob=1.5")
    with pytest.raises(ConfigError, match="model.preset"):
        tiny(genome, "model.preset=gpt5")
    with pytest.raises(ConfigError, match="model.overrides.*nonsense"):
        tiny(genome, "model.overrides.nonsense=1")
    with pytest.raises(ConfigError, match="model.overrides.*mamba2.*bogus"):
        tiny(genome, "model.overrides.mamba2.bogus=3")
    with pytest.raises(ConfigError, match="data.test_chroms"):
        tiny(genome, "data.test_chroms=[chr3]")


def test_set_overrides_are_typed(genome):
    cfg = tiny(genome, "optim.lr=2e-3", "stages.1.steps=7", "trainer.progress_bar=false", "trainer.seed=5",
               "model.overrides.mamba2.chunk_size=32", "data.validation_chroms=[chr2, chr3]", "model.init_from=")
    assert cfg.optim.lr == 2e-3 and isinstance(cfg.optim.lr, float)
    assert cfg.stages[1].steps == 7 and cfg.total_steps == 11
    assert cfg.trainer.progress_bar is False and cfg.trainer.seed == 5
    assert cfg.data.validation_chroms == ["chr2", "chr3"]
    lm = cfg.lm_config()
    m = lm.mamba2  # merged with the preset's and the file's, not replaced
    assert (m.d_state, m.headdim, m.expand, m.chunk_size) == (8, 16, 2, 32)
    for bad, key in [("optim.lrr=1", "optim.lrr"), ("stages.5.steps=1", "stages.5"), ("trainer.seed=x", "trainer.seed"),
                     ("trainer.progress_bar=maybe", "trainer.progress_bar"), ("optim", "KEY=VALUE")]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            tiny(genome, bad)


def test_cli_reports_config_errors_cleanly(genome, tmp_path, capsys):
    from dnalm.cli import main

    cfg = tmp_path / "bad.yaml"
    raw = tiny_raw(genome)
    raw["optim"]["warmup"] = 3
    cfg.write_text(yaml.safe_dump(raw))
    rc = main(["pretrain", "--config", str(cfg), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "optim.warmup: unknown key" in err and str(cfg) in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # stopped before anything was written


# ---------------------------------------------------------------------------------------------------- pieces
def test_parameter_groups():
    from dnalm.models import build_model
    from dnalm.training import parameter_groups

    model = build_model("hybridna-tiny", d_model=32, n_layer=2, attn_layer_idx=[1], d_intermediate=64,
                        mamba2={"d_state": 8, "headdim": 16, "chunk_size": 16},
                        attention={"n_heads": 2, "n_kv_heads": 2})
    decay, rest = parameter_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and rest["weight_decay"] == 0.0
    names = decay["names"] + rest["names"]
    assert len(names) == len(set(names)) == len(list(model.named_parameters()))
    assert sum(p.numel() for p in decay["params"] + rest["params"]) == model.num_parameters()
    for n in rest["names"]:
        assert any(t in n for t in ("A_log", ".D", "dt_bias", "norm", "ln_f", "bias", "embeddings")), n
    for n in decay["names"]:
        assert n.endswith("weight") and "norm" not in n and "embeddings" not in n, n
    assert any("in_proj.weight" in n for n in decay["names"]) and any("mlp.fc1.weight" in n for n in decay["names"])
    for leaf in ("A_log", "D", "dt_bias"):
        assert any(n.endswith("mixer." + leaf) for n in rest["names"])


def test_make_targets_masks_non_bases():
    from dnalm.pretrain import make_targets

    w = torch.tensor([[7, 8, 11, 9, 10, 4]])
    x, y = make_targets(w)
    assert x.tolist() == [[7, 8, 11, 9, 10]]
    assert y.tolist() == [[8, -100, 9, 10, -100]]


def test_score_bases_matches_direct_formula():
    from dnalm.pretrain import score_bases

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 12, generator=g)
    targets = torch.tensor([[7, 8, -100, 10, 9], [11, 7, 7, 8, -100]])
    bits, n, correct = score_bases(logits, targets)
    want_bits, want_n, want_c = 0.0, 0, 0
    for b in range(2):
        for t in range(5):
            tgt = int(targets[b, t])
            if 7 <= tgt <= 10:
                p = torch.softmax(logits[b, t, 7:11].double(), -1)
                want_bits -= math.log2(float(p[tgt - 7]))
                want_n += 1
                want_c += int(int(p.argmax()) == tgt - 7)
    assert float(bits) == pytest.approx(want_bits, rel=1e-5)
    assert int(n) == want_n and int(correct) == want_c


def test_step_batches_deterministic_and_split_by_rank(genome):
    from dnalm.pretrain import StepBatches, open_genomes

    cfg = tiny(genome)
    data = StepBatches(cfg, open_genomes(cfg))
    again = StepBatches(cfg, open_genomes(cfg))
    other = StepBatches(tiny(genome, "trainer.seed=1"), open_genomes(cfg))
    for step in (0, 3, 4, 7):
        b = data[step]
        stage_len = 32 if step < 4 else 64
        assert b["input_ids"].shape == (256 // stage_len, stage_len)
        assert torch.equal(b["input_ids"], again[step]["input_ids"])
        assert not torch.equal(b["input_ids"], other[step]["input_ids"])
        # targets are the next tokens, N masked
        full = torch.cat([b["input_ids"][:, :1], torch.where(b["labels"] == -100, 11, b["labels"])], 1)
        assert torch.equal(full[:, 1:-1][b["labels"][:, :-1] != -100], b["input_ids"][:, 1:][b["labels"][:, :-1] != -100])
        # the two halves of a 2-process run are the single-process batch
        halves = []
        for rank in range(2):
            data.rank, data.world = rank, 2
            halves.append(data[step]["input_ids"])
        data.rank, data.world = 0, 1
        assert torch.equal(torch.cat(halves), b["input_ids"])
    assert not torch.equal(data[0]["input_ids"][:4], data[1]["input_ids"][:4])  # no window repeats across steps


def test_validation_windows_are_held_out(genome):
    from dnalm.pretrain import PretrainDataModule

    dm = PretrainDataModule(tiny(genome))
    seen = [(item["chrom"], item["start"]) for item in dm.val_windows]
    assert seen and {c for c, _ in seen} == {"chr3"}
    assert len(seen) <= 2 * dm.val_batch_size
    starts = [s for _, s in seen]
    assert starts == sorted(set(starts))  # distinct tiles spread along the chromosome
    assert dm.describe()["validation"]["chromosomes"] == ["toy:chr3"]
    assert dm.describe()["test"]["chromosomes"] == ["toy:chr4"]


# ---------------------------------------------------------------------------------------------------- training
class _Crash(Exception):
    pass


def _crash_at(step: int):
    import lightning as L

    class CrashAt(L.Callback):
        """Simulates a killed job: dies when `step` optimizer steps are done (after the checkpoint before it)."""

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == step:
                raise _Crash(f"killed at step {step}")

    return CrashAt()


def _weights(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "model" / "model.safetensors"))


def test_pretrain_outputs_and_exact_resume(genome, tmp_path):
    from dnalm.models import load_model
    from dnalm.pretrain import pretrain

    cfg = tiny(genome, "trainer.export_every=4")
    full = pretrain(cfg, tmp_path / "full")
    run = tmp_path / "full"

    # outputs
    assert full["steps"] == 8 and full["tokens"] == 8 * 256
    with open(run / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8]
    assert rows[1]["val_bits_per_base"] and rows[3]["val_bits_per_base"] and not rows[0]["val_bits_per_base"]
    assert all(float(r["train_loss"]) > 0 and float(r["tokens_per_s"]) > 0 for r in rows)
    assert float(rows[0]["lr"]) == pytest.approx(3e-3)  # end of warm-up (2 steps)
    assert int(rows[-1]["tokens"]) == 2048
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "checkpoints" / "last.ckpt").exists()
    with open(run / "logs" / "csv" / "metrics.csv") as fh:  # Lightning's own CSV logger is always on
        logged = list(csv.DictReader(fh))
    assert {"loss", "val_bpb"} <= set(logged[0]) and any(r["val_bpb"] for r in logged)
    model = load_model(run / "model")
    assert model.config.n_layer == 2 and model.config.layer_pattern == ["mamba2", "attention"]
    from dnalm.models import read_model_config

    extra = read_model_config(run / "model")[1]["pretrain"]
    assert extra["step"] == 8 and extra["splits"]["test"] == ["toy:chr4"] and extra["splits"]["validation"] == ["toy:chr3"]
    # the bits/base in the CSV is the model's on the validation windows
    assert float(rows[-1]["val_bits_per_base"]) == pytest.approx(full["last_validation"]["val_bits_per_base"], rel=1e-5)

    # a run that dies after step 5 (last checkpoint: step 4), resumed, ends with the same weights
    killed = tmp_path / "killed"
    with pytest.raises(_Crash):
        pretrain(cfg, killed, callbacks=[_crash_at(5)])
    assert (killed / "checkpoints" / "last.ckpt").exists()
    partial = _weights(killed)  # exported at step 4
    with pytest.raises(ConfigError, match="--resume"):
        pretrain(cfg, killed)  # a second start into the same folder must not overwrite the run
    with pytest.raises(ConfigError, match=r"optim.lr"):
        pretrain(tiny(genome, "trainer.export_every=4", "optim.lr=1e-2"), killed, resume=True)
    with pytest.raises(ConfigError, match="exclude each other"):
        pretrain(cfg, killed, resume=True, overwrite=True)
    resumed = pretrain(cfg, killed, resume=True)
    assert resumed["steps"] == 8
    a, b = _weights(run), _weights(killed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert any(not torch.equal(partial[k], a[k]) for k in a)  # the resumed run did train on
    # --overwrite starts afresh in a used folder; the same seed gives the same run
    first = _weights(run)
    pretrain(cfg, run, overwrite=True)
    assert all(torch.equal(first[k], v) for k, v in _weights(run).items())
    with open(killed / "metrics.csv") as fh:
        rows_b = list(csv.DictReader(fh))
    assert [r["step"] for r in rows_b] == [r["step"] for r in rows]
    for ra, rb in zip(rows, rows_b):
        assert float(ra["train_loss"]) == pytest.approx(float(rb["train_loss"]), rel=1e-6)
        assert ra["val_bits_per_base"] == rb["val_bits_per_base"]


@pytest.mark.slow  # two processes start torch + lightning: about 30-60 s on 2 busy cores
def test_pretrain_cli_and_ddp_on_cpu(genome, tmp_path):
    """`dnalm pretrain` in 2 gloo processes (strategy ddp, accelerator cpu) completes and matches 1 process."""
    out = tmp_path / "ddp"
    sets = [f"data.genomes.0.path={genome}", "data.validation_chroms=[chr3]", "data.test_chroms=[chr4]",
            "trainer.strategy=ddp", "trainer.devices=2", "trainer.threads=1", "trainer.num_workers=0"]
    cmd = [sys.executable, "-m", "dnalm.cli", "pretrain", "--config", str(TINY), "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pretrained 8 steps" in proc.stdout
    assert proc.stdout.count("pretrained 8 steps") == 1  # printed by rank 0 only
    ddp = _weights(out)
    single = tmp_path / "single"
    from dnalm.pretrain import pretrain

    pretrain(tiny(genome, "trainer.threads=1"), single)
    one = _weights(single)
    # same batches split over 2 ranks, gradients averaged: the same training up to float rounding
    for k in one:
        assert torch.allclose(ddp[k], one[k], atol=2e-4, rtol=1e-3), k


def test_genome_mixture_weights(genome, tmp_path):
    from dnalm.pretrain import StepBatches, open_genomes

    other = write_genome(tmp_path / "other.fa", seed=1, sizes=(4000, 4000, 3000))
    cfg = tiny(genome, data__genomes=[{"path": str(genome), "weight": 3.0}, {"path": str(other), "weight": 1.0,
                                                                             "name": "second"}],
               data__validation_chroms=["toy:chr3", "second:chr3"], data__test_chroms=["toy:chr4"])
    data = StepBatches(cfg, open_genomes(cfg))
    gw = data.windows(0)
    assert gw.genome_names == ["toy", "second"]
    drawn = Counter(gw.random_window(i)["genome"] for i in range(400))
    assert 0.65 < drawn["toy"] / 400 < 0.85  # weights 3 : 1
    with pytest.raises(ConfigError, match=r"data.genomes\[1\].weight: give a weight > 0 to every genome or to none"):
        tiny(genome, data__genomes=[{"path": str(genome), "weight": 3.0}, {"path": str(other)}])


def test_time_budget_anneals_the_schedule():
    from dnalm.training import TimeBudget, lr_lambda
    from dnalm.training import WarmupCosine as _Schedule

    budget = TimeBudget(100.0)
    sched = _Schedule(10, 1000, 0.1, budget)
    assert sched(50) == lr_lambda(50, 10, 1000, 0.1)  # not started: by steps
    budget.start()
    budget.t0 -= 50.0  # half the budget used at step 50: the cosine is half-way
    assert sched(50) == pytest.approx(lr_lambda(500, 10, 1000, 0.1), rel=1e-3)
    assert sched(5) == lr_lambda(5, 10, 1000, 0.1)  # warm-up stays step-based
    budget.t0 -= 60.0  # over budget: the minimum
    assert sched(60) == pytest.approx(0.1)
    assert sched(900) == pytest.approx(lr_lambda(1000, 10, 1000, 0.1))
