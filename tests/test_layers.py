"""Import layers (docs/ARCHITECTURE.md): every module's imports, parsed with ast, point down the layer map, never up.

Layers, lowest first (a module may import its own layer's modules and those below it):

0. foundation: ``dnalm.errors``, ``dnalm.utils``, ``dnalm.tokenizer``, ``dnalm.config``, ``dnalm.training``, and the
   stdlib-only ``dnalm.io.output`` (the one output writer) and ``dnalm.io.compression`` (the one gzip opener)
1. ``dnalm.models`` (third-party: torch, safetensors, numpy; optional kernels only inside try/except) and
   ``dnalm.io`` (readers and writers of genomes, intervals, variants)
2. ``dnalm.data`` (datasets over ``dnalm.io``)
3. dnalm's workflows: ``dnalm.variants``, ``dnalm.pretrain``, ``dnalm.evaluate_lm``, ``dnalm.report``, ... (any other
   ``dnalm.X`` library module)
4. the sibling packages ``data_prep``, ``finetune``, ``generate``: they build on ``dnalm`` and not on each other
5. the command layer ``dnalm.cli`` / ``dnalm.commands``: may import everything (lazily, inside a subcommand)

Imports inside functions count (a lazy import is still a dependency). Besides the layers: no module of the four
packages imports a private name (``from x import _y``) from another module.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dnalm", "data_prep", "finetune", "generate")
FOUNDATION = {"dnalm.errors", "dnalm.utils", "dnalm.tokenizer", "dnalm.config", "dnalm.training"}
# Modules of dnalm.io that need only the standard library and dnalm.errors, so every layer may use them: the one
# output writer (models save through it; dnalm.utils re-exports it) and the one gzip/bgzip opener.
FOUNDATION_MODULES = {"dnalm.io.output", "dnalm.io.compression"}
CLI = {"dnalm.cli", "dnalm.commands", "dnalm.__main__"}
MODELS_THIRD_PARTY = {"torch", "safetensors", "numpy"}
OPTIONAL_KERNELS = {"mamba_ssm", "causal_conv1d", "flash_attn"}  # fast paths, imported in try/except only
# Sibling-package imports that the design allows, with the reason. None today: data_prep, finetune and generate
# each build on dnalm only (shared code such as interval fetching or table reading lives in dnalm.data / dnalm.io).
SIBLING_EXCEPTIONS: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, list[str], int, bool]]:
    """(imported module, imported names, line, inside a try block) of every import statement of a module."""
    tree = ast.parse(path.read_text(), str(path))
    in_try: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            for child in node.body:
                in_try.update(id(n) for n in ast.walk(child))
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno, id(node) in in_try) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.append((module, [a.name for a in node.names], node.lineno, id(node) in in_try))
    return out


def _layer(module: str) -> tuple[int, str]:
    """(rank, group) of a project module."""
    parts = module.split(".")
    top = parts[0]
    if top != "dnalm":
        return 4, top
    group = ".".join(parts[:2])
    if module in FOUNDATION_MODULES:
        return 0, module
    if group in CLI:
        return 5, "cli"
    if module == "dnalm":
        return 3, "dnalm"  # the package's lazy export table (points into several layers)
    if group in FOUNDATION:
        return 0, group
    if group in ("dnalm.models", "dnalm.io"):
        return 1, group
    if group == "dnalm.data":
        return 2, group
    return 3, group


def _violations(name: str, path: Path) -> list[str]:
    rank, group = _layer(name)
    found = []
    for module, names, line, guarded in _imports(name, path):
        top = module.split(".")[0]
        where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{line}"
        if top in PACKAGES:
            r, g = _layer(module)
            if r > rank:
                found.append(f"{where}: {name} (layer {rank}) imports {module} (layer {r})")
            elif r == rank == 4 and g != group and (group, g) not in SIBLING_EXCEPTIONS:
                found.append(f"{where}: {name} imports the sibling package {module}")
            elif rank <= 1 and r == 1 and g != group:
                found.append(f"{where}: {name} imports {module} ({group} and {g} are independent)")
            elif rank == 1 and module == "dnalm":
                found.append(f"{where}: {name} imports the dnalm export table (name the defining module)")
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and module != name:
                found.append(f"{where}: {name} imports private name(s) {private} from {module}")
        elif group == "dnalm.models" and top not in sys.stdlib_module_names and top != "__future__":
            if top in OPTIONAL_KERNELS and guarded:
                continue
            if top not in MODELS_THIRD_PARTY:
                found.append(f"{where}: dnalm.models imports {module} (only torch, safetensors, numpy)")
    return found


def test_the_four_packages_are_found():
    for pkg in PACKAGES:
        assert pkg in MODULES
    assert "dnalm.models.lm" in MODULES and "dnalm.commands.generate" in MODULES


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down(name):
    assert _violations(name, MODULES[name]) == []


def test_the_checker_sees_violations(tmp_path):
    """The rules catch what they are for (an upward import, a sibling, a private name, a model dependency)."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import os\n"
        "from dnalm.commands.generate import run\n"
        "from dnalm.io.variants import _open_text\n"
        "def f():\n    import generate.sampling\n    import pandas\n"
        "try:\n    import mamba_ssm\nexcept ImportError:\n    pass\n"
        "import flash_attn\n"
    )
    as_models = _violations("dnalm.models.bad", bad)
    assert any("imports dnalm.commands.generate (layer 5)" in v for v in as_models)
    assert any("private name(s) ['_open_text']" in v for v in as_models)
    assert any("imports generate.sampling (layer 4)" in v for v in as_models)
    assert any("dnalm.models imports pandas" in v for v in as_models)
    assert any("dnalm.models imports flash_attn" in v for v in as_models)  # unguarded
    assert not any("mamba_ssm" in v for v in as_models)  # guarded: allowed
    assert any("dnalm.io.variants" in v and "independent" in v for v in as_models)
    as_finetune = _violations("finetune.bad", bad)
    assert any("sibling package generate.sampling" in v for v in as_finetune)
    assert not any("pandas" in v for v in as_finetune)
    as_command = _violations("dnalm.commands.bad", bad)  # the command layer may import anything public
    assert len(as_command) == 1 and "private" in as_command[0]


def test_relative_imports_resolve():
    """``from ._common import x`` inside dnalm/data/intervals.py is dnalm.data._common."""
    got = {m for m, *_ in _imports("dnalm.data.intervals", MODULES["dnalm.data.intervals"])}
    assert "dnalm.data._common" in got and "dnalm.data.bed" in got
