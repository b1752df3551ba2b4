"""The one strict config loader (dnalm.config) and every kind of config that goes through it: a misspelt or wrongly
typed key fails before any work, naming the dotted key and suggesting the right one."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

import dnalm
from dnalm.config import ConfigError, apply_overrides, from_dict, load_config, read_mapping, to_dict

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Inner:
    steps: int = 0
    length: int = 0


@dataclass
class Opt:
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    span: tuple[float, float] = (1.0, 16.0)
    kind: Literal["adamw", "sgd"] = "adamw"
    limit: int | None = None


@dataclass
class Cfg:
    optim: Opt = field(default_factory=Opt)
    stages: list[Inner] = field(default_factory=list)
    free: dict = field(default_factory=dict)
    ks: list[int] = field(default_factory=lambda: [1, 2])
    flag: bool = False
    name: str = ""


def _msg(fn, *a, **k) -> str:
    with pytest.raises(ConfigError) as exc:
        fn(*a, **k)
    return str(exc.value)


# ---------------------------------------------------------------------------------------------------- the loader
def test_types_are_checked_and_converted():
    c = from_dict(Cfg, {"optim": {"lr": "1e-3", "span": [2, 3], "limit": 4.0}, "stages": [{"steps": 2}],
                        "name": 32})
    assert c.optim.lr == 1e-3 and isinstance(c.optim.lr, float)  # YAML 1.1 reads 1e-3 as a string
    assert c.optim.span == (2.0, 3.0) and c.optim.limit == 4 and isinstance(c.optim.limit, int)
    assert c.stages == [Inner(steps=2)] and c.name == "32"
    for raw, key, what in [
        ({"optim": {"lr": "x"}}, "optim.lr", "number"),
        ({"optim": {"limit": 1.5}}, "optim.limit", "expected integer"),
        ({"flag": "yes"}, "flag", "boolean"),
        ({"ks": [1, "a"]}, r"ks\[1\]", "integer"),
        ({"optim": {"span": [1]}}, "optim.span", "2 items"),
        ({"optim": 3}, "optim", "mapping"),
        ({"stages": {"steps": 1}}, "stages", "list of mapping"),
    ]:
        msg = _msg(from_dict, Cfg, raw)
        assert re.match(key + ":", msg) and what in msg, msg
    msg = _msg(from_dict, Cfg, {"optim": {"kind": "adam"}})
    assert msg.startswith("optim.kind: 'adam' is not one of 'adamw', 'sgd'; did you mean 'adamw'?")


def test_unknown_keys_name_the_dotted_key_and_suggest():
    assert "optim.lrr: unknown key; did you mean 'optim.lr'?" in _msg(from_dict, Cfg, {"optim": {"lrr": 1}})
    assert "stages[1].lenght: unknown key; did you mean 'stages[1].length'?" in _msg(
        from_dict, Cfg, {"stages": [{}, {"lenght": 3}]})
    msg = _msg(from_dict, Cfg, {"zzz": 1})
    assert msg.startswith("zzz: unknown key (known: optim, stages")  # nothing close: no suggestion


def test_set_overrides_are_typed_with_list_indices():
    c = from_dict(Cfg, {"stages": [{"steps": 2}, {"steps": 3}]})
    c2 = apply_overrides(c, ["stages[1].steps=7", "stages.0.length=5", "optim.span=[1, 2]", "free.a.b=3",
                             "ks=1,2,3", "optim.limit=null", "optim.kind=sgd", "optim.betas=0.8,0.9", "flag=on",
                             "name=007", "optim.lr=2e-3"])
    assert c2.stages == [Inner(2, 5), Inner(7, 0)] and c2.optim.span == (1.0, 2.0) and c2.free == {"a": {"b": 3}}
    assert c2.ks == [1, 2, 3] and c2.optim.limit is None and c2.optim.kind == "sgd" and c2.optim.betas == [0.8, 0.9]
    assert c2.flag is True and c2.name == "007" and c2.optim.lr == 2e-3
    assert c.stages[1].steps == 3  # the original is not modified
    for bad, expected in [
        ("optim.lrr=1", "optim.lrr: unknown key; did you mean 'optim.lr'?"),
        ("stages.3.steps=1", "no list item '3' (the list has 2 items)"),
        ("stages[1].step=1", "stages[1].step: unknown key; did you mean 'stages[1].steps'?"),
        ("optim.lr=fast", "optim.lr: expected number"),
        ("flag=maybe", "flag: expected a boolean"),
        ("optim", "expected KEY=VALUE"),
    ]:
        assert expected in _msg(apply_overrides, c, [bad]), bad
    # the key is named once, and a --set error is not blamed on the config file it is applied after
    assert _msg(apply_overrides, c, ["optim.lrr=1"]).count("optim.lrr") == 1


def test_files_are_read_strictly_and_named(tmp_path):
    good = tmp_path / "c.yaml"
    good.write_text("optim: {lr: 1e-3}\nstages:\n  - {steps: 2}\n")
    assert load_config(Cfg, good, ["stages.0.steps=4"]).stages[0].steps == 4
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"optim": {"lr": 0.5}}))
    assert load_config(Cfg, js).optim.lr == 0.5
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: {lrr: 1}\n")
    assert _msg(load_config, Cfg, bad).startswith(f"{bad}: optim.lrr: unknown key; did you mean 'optim.lr'?")
    assert _msg(load_config, Cfg, good, ["optim.lrr=1"]) == (
        "--set optim.lrr: unknown key; did you mean 'optim.lr'? (known: lr, betas, span, kind, limit)")
    binary = tmp_path / "weights.yaml"
    binary.write_bytes(b"\x00\x01\x02PK\x03\x04")
    assert _msg(read_mapping, binary) == f"{binary}: a binary file, not a YAML/JSON config"
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert _msg(read_mapping, latin).startswith(f"{latin}: not UTF-8 text")
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    assert _msg(read_mapping, listy) == f"{listy}: expected a mapping of settings at the top level, got list"
    assert _msg(read_mapping, tmp_path / "none.yaml").endswith("config file not found")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert _msg(read_mapping, broken).startswith(f"{broken}: not valid JSON")


def test_to_dict_round_trips():
    c = apply_overrides(Cfg(), ["stages=[{steps: 1}]", "optim.span=[3, 4]"])
    assert from_dict(Cfg, json.loads(json.dumps(to_dict(c)))) == c


# ---------------------------------------------------------------------------------------------------- each config kind
def test_model_config_json_with_a_misspelt_sub_key_fails_at_load(tmp_path):
    model = dnalm.build_model("hybridna-tiny", d_model=32, n_layer=2, attn_layer_idx=[1], d_intermediate=64,
                              mamba2={"d_state": 8, "headdim": 16, "chunk_size": 16},
                              attention={"n_heads": 2, "n_kv_heads": 2})
    model.save_pretrained(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    meta = json.loads(path.read_text())
    assert meta["config"]["mamba2"]["chunk_size"] == 16  # sub-configs are written in full
    for section, good, bad in [("mamba2", "chunk_size", "chunk_sise"), ("attention", "n_heads", "n_head"),
                               ("hyena", "emb_dim", "embdim")]:
        broken = json.loads(json.dumps(meta))
        broken["config"][section][bad] = broken["config"][section].pop(good)
        path.write_text(json.dumps(broken))
        msg = _msg(dnalm.load_model, tmp_path / "m")
        assert f"{section}.{bad}: unknown key; did you mean '{section}.{good}'?" in msg and str(path) in msg
    wrong = json.loads(json.dumps(meta))
    wrong["config"]["mamba2"]["d_state"] = "eight"
    path.write_text(json.dumps(wrong))
    assert "mamba2.d_state: expected integer" in _msg(dnalm.load_model, tmp_path / "m")


def test_model_config_is_checked_without_building_a_model(monkeypatch):
    from dnalm.models import lm

    def no_build(*a, **k):
        raise AssertionError("a model was built to validate a config")

    monkeypatch.setattr(lm, "make_mixer", no_build)
    monkeypatch.setattr(lm.DNALM, "__init__", no_build)
    cfg = lm.LMConfig.from_dict({"n_layer": 2, "attn_layer_idx": [1], "mamba2": {"headdim": 16}})
    assert cfg.mamba2.headdim == 16 and cfg.attention.n_heads == 4
    assert "attention.n_heads: d_model=30 is not divisible by n_heads=4" in _msg(
        lm.LMConfig.from_dict, {"d_model": 30, "n_layer": 2, "attn_layer_idx": [1], "mamba2": {"headdim": 10}})
    assert "mamba2.headdim: d_inner 256" in _msg(lm.LMConfig.from_dict, {"mamba2": {"headdim": 48}})
    # pretraining's check of model.overrides builds nothing either
    from dnalm.pretrain.config import config_from_dict

    raw = yaml.safe_load((ROOT / "config" / "pretrain" / "tiny.yaml").read_text())
    raw["model"]["overrides"]["mamba2"]["chunk_sise"] = 8
    assert "model.overrides.mamba2.chunk_sise: unknown key; did you mean 'model.overrides.mamba2.chunk_size'?" in _msg(
        config_from_dict, raw, check_files=False)


def test_finetune_yaml_is_strict_and_typed(tmp_path):
    from finetune.config import FinetuneConfig

    f = tmp_path / "ft.yaml"
    f.write_text("lr_head: 1e-3\nweight_decay: 0.1\n")
    assert load_config(FinetuneConfig, f).lr_head == 1e-3
    f.write_text("weight_decay: x\n")
    assert "weight_decay: expected number, got str 'x'" in _msg(load_config, FinetuneConfig, f)
    f.write_text("lr_hed: 1e-3\n")
    assert "lr_hed: unknown key; did you mean 'lr_head'?" in _msg(load_config, FinetuneConfig, f)


def test_reading_finetune_settings_does_not_import_lightning():
    import subprocess
    import sys

    code = ("import sys; from finetune.config import FinetuneConfig; from finetune.benchmark import BenchmarkConfig; "
            "from dnalm.pretrain.config import PretrainConfig; print('lightning' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_benchmark_yaml_checks_its_finetune_section(tmp_path):
    from finetune.benchmark import BenchmarkConfig

    f = tmp_path / "suite.yaml"
    f.write_text("suite: gue\nfinetune: {max_stepz: 3}\n")
    assert "finetune.max_stepz: unknown key; did you mean 'finetune.max_steps'?" in _msg(BenchmarkConfig.load, f)
    f.write_text("suite: gue\ntask_finetune: {prom: {lr_head: fast}}\n")
    assert "task_finetune.prom.lr_head: expected number" in _msg(BenchmarkConfig.load, f)
    f.write_text("suite: gue\nkmer_kk: [1, 2]\n")
    assert "kmer_kk: unknown key; did you mean 'kmer_k'?" in _msg(BenchmarkConfig.load, f)
    f.write_text("suite: gue\n")
    assert "finetune.lr_hed" in _msg(BenchmarkConfig.load, f, ["finetune.lr_hed=1"])


@pytest.mark.parametrize("cls_path, raw, expected", [
    ("generate.training.GeneratorTrainConfig", {"max_step": 3}, "max_step: unknown key; did you mean 'max_steps'?"),
    ("generate.training.GeneratorTrainConfig", {"edges": {"gc": ["a"]}}, "edges.gc[0]: expected number"),
    ("generate.training.GeneratorTrainConfig", {"val_fraction": 1.5}, "val_fraction"),
    ("generate.oracle.OracleTrainConfig", {"lr": "fast"}, "lr: expected number"),
    ("generate.oracle.OracleTrainConfig", {"max_epoch": 2}, "max_epoch: unknown key; did you mean 'max_epochs'?"),
    ("generate.evaluate.EvalConfig", {"topk": 2}, "topk: unknown key; did you mean 'top_k'?"),
    ("generate.evaluate.EvalConfig", {"kmer_sizes": [4, "six"]}, "kmer_sizes[1]: expected integer"),
])
def test_generator_oracle_and_cre_settings(tmp_path, cls_path, raw, expected):
    import importlib

    module, _, name = cls_path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(raw))
    assert expected in _msg(load_config, cls, f)


def test_oracle_architecture_keys_are_strict():
    from generate.oracle import arch_overrides, oracle_config

    assert arch_overrides(["channels=32", "dropout=0.2"]) == {"channels": 32, "dropout": 0.2}
    assert "arch.chanels: unknown key; did you mean 'arch.channels'?" in _msg(arch_overrides, ["chanels=32"])
    assert "arch.channels: expected integer" in _msg(arch_overrides, ["channels=many"])

    cfg = oracle_config({"channels": 16}, seq_len=10, targets=["a"])
    assert cfg.channels == 16 and cfg.seq_len == 10
    assert "arch.chanels: unknown key; did you mean 'arch.channels'?" in _msg(oracle_config, {"chanels": 16},
                                                                               seq_len=10, targets=["a"])


# ---------------------------------------------------------------------------------------------------- the CLI
CLI = {  # every command with --set, its required arguments (placeholders: the settings fail before they are read)
    "pretrain": ["--config", str(ROOT / "config" / "pretrain" / "tiny.yaml"), "--out", "{tmp}/run"],
    "finetune": ["--model", "transformer-tiny", "--task", "csv:{tmp}/none.csv", "--out", "{tmp}/ft"],
    "benchmark": ["--model", "transformer-tiny", "--suite", "gue", "--out", "{tmp}/bench"],
    "finetune-generator": ["--model", "transformer-tiny", "--input", "{tmp}/t.tsv", "--label-columns", "a",
                           "--out", "{tmp}/gen"],
    "train-oracle": ["--input", "{tmp}/t.tsv", "--label-columns", "a", "--out", "{tmp}/oracle"],
    "evaluate-cre": ["--generated", "{tmp}/g.fa", "--oracle", "{tmp}/o", "--reference", "{tmp}/t.tsv", "--out",
                     "{tmp}/eval"],
}
MISSPELT = {"pretrain": ("optim.lrr", "optim.lr"), "finetune": ("max_stepz", "max_steps"),
            "benchmark": ("max_stepz", "max_steps"), "finetune-generator": ("max_step", "max_steps"),
            "train-oracle": ("max_epoch", "max_epochs"), "evaluate-cre": ("topk", "top_k")}


def test_every_command_with_set_is_covered():
    import argparse

    from dnalm.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    with_config = {name for name, p in sub.choices.items() if "--config" in {o for a in p._actions for o in a.option_strings}}
    assert with_config == set(CLI)


@pytest.mark.parametrize("command", sorted(CLI))
def test_cli_set_with_a_misspelt_or_mistyped_key_exits_2(command, tmp_path, capsys):
    from dnalm.cli import main

    args = [a.replace("{tmp}", str(tmp_path)) for a in CLI[command]]
    bad, good = MISSPELT[command]
    assert main([command, *args, "--set", f"{bad}=3"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: unknown key; did you mean '{good}'?" in err and "Traceback" not in err, err
    assert main([command, *args, "--set", f"{good}=three"]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"{re.escape(good)}: expected (integer|number), got str .three.", err) and "Traceback" not in err, err
    assert not any(tmp_path.iterdir())  # nothing was written


def test_readme_pipeline_set_keys_are_real():
    text = (ROOT / "docs" / "sections" / "pipeline.md").read_text()
    m = re.search(r"pretrain: \{config: (\S+), set: (\[.*?\])[,}]", text)
    assert m, "the pipeline section shows a pretrain config with --set items"
    from dnalm.pretrain.config import load_config as load_pretrain

    cfg = load_pretrain(ROOT / m.group(1), yaml.safe_load(m.group(2)), check_files=False)
    assert cfg.total_steps == 20000
