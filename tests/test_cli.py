"""The `dnalm` dispatcher: every registered subcommand imports and answers --help; errors exit cleanly."""

import importlib
import subprocess
import sys

import pytest

from dnalm.cli import COMMANDS, main


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_module_imports_and_has_help(name, capsys):
    module = importlib.import_module(COMMANDS[name][0])
    assert callable(module.add_arguments) and callable(module.run)
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert "usage: dnalm " + name in capsys.readouterr().out


def test_top_level_help_lists_all_commands():
    out = subprocess.run([sys.executable, "-m", "dnalm.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in COMMANDS:
        assert name in out.stdout


def test_help_does_not_import_torch_or_lightning():
    code = "import sys; from dnalm.cli import build_parser; build_parser(); print('torch' in sys.modules, 'lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_bad_input_exits_nonzero_without_traceback(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "dnalm.cli", "info", "--model", str(tmp_path / "missing")],
        capture_output=True, text=True,
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "error:" in out.stderr
