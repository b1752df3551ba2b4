"""The command-line conventions (README "Command conventions"), checked on every subcommand's parser, and the
bounded argument validators of dnalm.commands.options."""

import argparse
import math

import pytest

from dnalm.cli import COMMANDS, build_parser
from dnalm.commands import options

COMPUTE = {"--device", "--dtype", "--threads", "--batch-size", "--no-progress"}
# commands that run a model, and the compute flags each takes (all five unless a reason is written here)
RUNS_A_MODEL = {
    "embed": COMPUTE,
    "predict": COMPUTE,
    "generate": COMPUTE,
    "score-variants": COMPUTE,
    "ism": COMPUTE,
    "evaluate-lm": COMPUTE,
    "finetune": COMPUTE,  # the flags become FinetuneConfig fields (batch_size, accelerator, precision, ...)
    "benchmark": COMPUTE,
    "pretrain": COMPUTE - {"--batch-size"},  # batch sizes are per curriculum stage (stages.N.batch_size)
    "finetune-generator": {"--threads", "--batch-size", "--no-progress"},  # Lightning picks the device
    "train-oracle": {"--threads", "--batch-size", "--no-progress"},  # the oracle trainer picks the device
    "evaluate-cre": {"--threads", "--no-progress"},  # the oracle runs on CPU in one pass
}
WITH_MODEL = {"embed", "predict", "generate", "score-variants", "ism", "evaluate-lm", "finetune", "benchmark",
              "finetune-generator", "info"}
WITH_SETTINGS = {"pretrain", "finetune", "benchmark", "finetune-generator", "train-oracle", "evaluate-cre"}
# names that used to mean what one convention name means now
RETIRED = {"--vcf": "--input", "--data-table": "--input", "--property-columns": "--label-columns",
           "--target-columns": "--label-columns", "--label-column": "--label-columns", "--override": "--set",
           "--overrides": "--set", "--prefix": "--out", "--force": "--overwrite", "--num-threads": "--threads",
           "--bs": "--batch-size", "--quiet": "--no-progress"}


def _parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


PARSERS = _parsers()


def test_every_registered_command_is_checked():
    assert set(PARSERS) == set(COMMANDS)
    for name in (*RUNS_A_MODEL, *WITH_MODEL, *WITH_SETTINGS):
        assert name in COMMANDS, f"{name} is listed here but not a command"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_conventions(name):
    p = PARSERS[name]
    flags = set(p._option_string_actions)
    for flag in RUNS_A_MODEL.get(name, ()):
        assert flag in flags, f"dnalm {name} runs a model but lacks {flag}"
    if name in WITH_MODEL:
        assert "--model" in flags
    if "--out" in flags:
        assert "--overwrite" in flags, f"dnalm {name} writes but has no --overwrite"
        assert p.get_default("_out_kind") in ("file", "folder"), f"dnalm {name}: --out must say file or folder"
        assert p._option_string_actions["--out"].metavar in ("FILE", "DIR")
    if name in WITH_SETTINGS:
        assert {"--config", "--set"} <= flags, f"dnalm {name} has settings but lacks --config/--set"
    for old, new in RETIRED.items():
        assert old not in flags, f"dnalm {name}: {old} is spelt {new} everywhere"
    # every numeric option is typed with a bounded validator, not a bare int/float
    for action in p._actions:
        assert action.type not in (int, float), f"dnalm {name} {action.option_strings}: use a validator with bounds"


@pytest.mark.parametrize("name", sorted(n for n in COMMANDS if "--device" in PARSERS[n]._option_string_actions))
def test_device_and_dtype_are_checked_when_parsed(name, capsys):
    p = PARSERS[name]
    with pytest.raises(SystemExit) as exc:
        p.parse_known_args(["--device", "tpu9"])
    assert exc.value.code == 2 and "unknown device 'tpu9'" in capsys.readouterr().err
    if "--dtype" in p._option_string_actions:
        with pytest.raises(SystemExit):
            p.parse_known_args(["--dtype", "float8"])
        assert "invalid choice" in capsys.readouterr().err


def test_cuda_refused_cleanly_without_cuda(capsys):
    import torch

    if torch.cuda.is_available():
        assert options.device("cuda") == "cuda"
        n = torch.cuda.device_count()
        with pytest.raises(argparse.ArgumentTypeError, match=f"{n} CUDA device"):
            options.device(f"cuda:{n}")
    else:
        with pytest.raises(argparse.ArgumentTypeError, match="CUDA is not available"):
            options.device("cuda")
    assert options.device("CPU") == "cpu" and options.device("auto") == "auto"
    assert options.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize(
    "parse, good, bad",
    [
        (options.positive_int, ["1", "7", " 12 "], ["0", "-3", "1e12", "2.5", "x", ""]),
        (options.non_negative_int, ["0", "5"], ["-1", "nan"]),
        (options.batch_size_type, ["1", str(options.MAX_BATCH_SIZE)], ["0", str(options.MAX_BATCH_SIZE + 1)]),
        (options.probability, ["0", "1", "0.25"], ["-0.1", "1.01", "nan", "inf", "5"]),
        (options.fraction, ["0", "0.5"], ["1", "-0.1"]),
        (options.positive_float, ["1e-9", "3"], ["0", "-1", "nan", "-inf"]),
        (options.non_negative_float, ["0", "2"], ["-1e-9", "nan"]),
        (options.finite_float, ["-5", "1e300"], ["nan", "inf", "-inf", "1e999"]),
        (options.key_value, ["a=1", "a.b=", "x=y=z"], ["a", "=1", ""]),
        (options.comma_list, ["a", "a, b"], ["", "a,,b"]),
    ],
)
def test_validators_accept_inside_and_refuse_outside_bounds(parse, good, bad):
    for text in good:
        value = parse(text)
        if isinstance(value, float):
            assert math.isfinite(value)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--temperature", "-1"], "--temperature: must be >= 0"),
        (["--temperature", "nan"], "--temperature: must be a finite number"),
        (["--top-p", "5"], "--top-p: must be in (0, 1]"),
        (["--top-k", "-3"], "--top-k: must be an integer >= 0"),
        (["--num", "1e12"], "--num: expected an integer"),
        (["--num", "100000000000"], "--num: must be an integer in [1, 10,000,000]"),
        (["--beam-size", "100000000"], "--beam-size: must be an integer in [1, 1,024]"),
        (["--batch-size", "0"], "--batch-size: must be an integer in [1, 65,536]"),
        (["--gc-min", "1.5"], "--gc-min: must be in [0, 1]"),
    ],
)
def test_generate_refuses_unbounded_arguments_at_parse_time(argv, message, capsys):
    from dnalm.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["generate", "--model", "hyenadna-tiny", "--num", "1", "--out", "x.fa", *argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and "Traceback" not in err


def test_ism_flank_and_window_bounds(capsys):
    from dnalm.cli import main

    for argv, message in [(["ism", "--model", "m", "--sequence", "ACGT", "--out", "o", "--flank", "-5"], "--flank"),
                          (["score-variants", "--model", "m", "--fasta", "f", "--input", "v", "--out", "o",
                            "--window", "0"], "--window")]:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err


def test_training_flags_become_settings():
    from dnalm.commands.finetune import COMPUTE_KEYS

    p = PARSERS["finetune"]
    args = p.parse_args(["--model", "m", "--task", "t", "--out", "o", "--batch-size", "8", "--threads", "2",
                         "--no-progress", "--device", "cpu", "--dtype", "bfloat16"])
    sets = options.training_overrides(args, COMPUTE_KEYS)
    assert sets == ["batch_size=8", "threads=2", "progress_bar=false", "accelerator=cpu", "precision=bf16-mixed"]
    from finetune.lightning import FinetuneConfig

    cfg = options.load_settings(FinetuneConfig, args, sets)
    assert (cfg.batch_size, cfg.threads, cfg.progress_bar, cfg.accelerator, cfg.precision) == (
        8, 2, False, "cpu", "bf16-mixed")
    # without the flags the settings keep their own values
    args = p.parse_args(["--model", "m", "--task", "t", "--out", "o", "--set", "batch_size=3"])
    assert options.training_overrides(args, COMPUTE_KEYS) == []
    assert options.load_settings(FinetuneConfig, args).batch_size == 3


def test_model_overrides_are_typed_against_the_model_config():
    from dnalm.config import ConfigError, overrides_dict
    from dnalm.models.lm import LMConfig

    assert overrides_dict(LMConfig, ["hyena.shift=0.05", "dropout=0.1", "attn_layer_idx=[1, 2]"]) == {
        "hyena": {"shift": 0.05}, "dropout": 0.1, "attn_layer_idx": [1, 2]}
    with pytest.raises(ConfigError, match="hyena.shfit: unknown key; did you mean 'hyena.shift'"):
        overrides_dict(LMConfig, ["hyena.shfit=0.05"])
    with pytest.raises(ConfigError, match="dropout: expected number"):
        overrides_dict(LMConfig, ["dropout=high"])


@pytest.mark.parametrize("item", ["lr_head=nan", "lr_backbone=-1", "weight_decay=inf", "max_steps=0"])
def test_finetune_settings_are_bounded(item, capsys):
    """Settings given with --set are checked like flags: the run stops with exit 2 naming the key, before work."""
    from dnalm.cli import main

    assert main(["finetune", "--model", "hyenadna-tiny", "--task", "csv:none.csv", "--out", "o", "--set", item]) == 2
    err = capsys.readouterr().err
    assert item.split("=")[0] in err and "Traceback" not in err
