"""The import layering (docs/architecture.md, "Layering"; issue 10), read from the source.

Every .py file of the five packages is parsed with `ast` (nothing is imported or executed) and
every `import` / `from ... import`, top level or inside a function, is checked against the layers:

    command line   pipeline/cli.py, every `cli.py` / `cli_*.py`, the demo recipe, `worldloom config`
    training       imports pipeline, model, unreal_bridge, contract
    pipeline       imports unreal_bridge (the render client), model (weights_file), contract; not training
    model          torch, numpy, open_clip, safetensors and the standard library only
    unreal_bridge  imports contract; not pipeline, training or model
    contract       the standard library, numpy, pydantic and PyYAML only

and nothing outside the command line imports the command line.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("contract", "model", "unreal_bridge", "pipeline", "training")
STDLIB = set(sys.stdlib_module_names) | {"__future__"}

ALLOWED_THIRD_PARTY = {
    "contract": {"numpy", "pydantic", "pydantic_core", "yaml"},
    "model": {"torch", "numpy", "open_clip", "safetensors"},  # safetensors: model/weights_file.py reads weights files
}
MODEL_CLI_EXTRA = {"click", "rich"}  # `worldloom model info` is a click command with a rich table
FORBIDDEN_OURS = {
    "contract": {"pipeline", "training", "model", "unreal_bridge"},
    "model": {"contract", "pipeline", "training", "unreal_bridge"},
    "unreal_bridge": {"pipeline", "training", "model"},
    "pipeline": {"training"},  # except pipeline's command-line modules (the top layer)
}
# Modules of the command-line layer that are not named cli.py / cli_*.py.
CLI_MODULES = {"pipeline.demo", "pipeline.config_show"}

# Known exceptions, each with its reason. Keep this list short; an entry goes when its cause does.
# (module, imported module) pairs; none at present (the sampler's progress bar moved to its caller,
# training/sample.py, and model/sampler.py takes a callback).
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_cli(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return module in CLI_MODULES or last == "cli" or last.startswith("cli_")


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names that may be submodules: `from pipeline import cli`) per import."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                parts = package.split(".")
                target = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target, [f"{target}.{a.name}" for a in node.names if a.name != "*"]))
    return found


def _sources() -> list[Path]:
    files: list[Path] = []
    for package in PACKAGES:
        files.extend(sorted((REPO / package).rglob("*.py")))
    return files


def _violations() -> list[str]:
    ours = set(PACKAGES)
    problems: list[str] = []
    for path in _sources():
        module = _module_name(path)
        layer = module.split(".")[0]
        rel = path.relative_to(REPO).as_posix()
        for line, target, names in _imports(path):
            root = target.split(".")[0]
            if (module, target) in KNOWN_EXCEPTIONS:
                continue
            top = layer == "pipeline" and _is_cli(module)  # pipeline's command line wires every part
            if root in FORBIDDEN_OURS.get(layer, set()) and not top:
                problems.append(f"{rel}:{line}: {layer} imports {target}")
            allowed = ALLOWED_THIRD_PARTY.get(layer)
            if allowed is not None and root not in ours and root not in STDLIB:
                extra = MODEL_CLI_EXTRA if module == "model.cli" else set()
                if root not in allowed | extra:
                    problems.append(f"{rel}:{line}: {layer} imports {target} (allowed: {', '.join(sorted(allowed))})")
            cli = [t for t in [target, *names] if t.split(".")[0] in ours and _is_cli(t) and t in _all_modules()]
            if cli and not _is_cli(module):
                problems.append(f"{rel}:{line}: {module} imports the command line ({cli[0]})")
    return problems


_MODULES: set[str] = set()


def _all_modules() -> set[str]:
    if not _MODULES:
        _MODULES.update(_module_name(p) for p in _sources())
    return _MODULES


def test_no_import_runs_against_the_layering() -> None:
    problems = _violations()
    assert not problems, "imports against the layering (docs/architecture.md, Layering):\n" + "\n".join(problems)


def test_known_exceptions_are_still_needed() -> None:
    """An exception whose import is gone must leave the list (so the list stays honest)."""
    present = {(_module_name(p), target) for p in _sources() for _, target, _ in _imports(p)}
    assert KNOWN_EXCEPTIONS <= present, sorted(KNOWN_EXCEPTIONS - present)


@pytest.mark.parametrize(("layer", "source", "expected"), [
    ("model", "from contract.errors import UserError\n", "model imports contract.errors"),
    ("model", "import ray\n", "model imports ray"),
    ("unreal_bridge", "def f():\n    from pipeline import encode\n", "unreal_bridge imports pipeline"),
    ("contract", "import torch\n", "contract imports torch"),
    ("pipeline", "from training import api\n", "pipeline imports training"),
    ("training", "from pipeline.cli import main\n", "imports the command line (pipeline.cli)"),
])
def test_the_checker_catches_each_kind_of_violation(layer, source, expected, tmp_path, monkeypatch) -> None:
    """The rules themselves: a probe file in each layer with one bad import is reported."""
    fake = tmp_path / "repo"
    for package in PACKAGES:
        (fake / package).mkdir(parents=True)
        (fake / package / "__init__.py").write_text("")
    (fake / "pipeline" / "cli.py").write_text("")
    (fake / layer / "probe.py").write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "REPO", fake)
    _MODULES.clear()
    try:
        problems = _violations()
    finally:
        _MODULES.clear()
    assert len(problems) == 1 and expected in problems[0], problems


def test_the_model_default_action_dim_matches_the_contract() -> None:
    """model/ keeps `DiTConfig.action_dim = 8` as a plain default (it imports nothing of ours); it must equal the contract's."""
    from contract.sample import ACTION_DIM, ACTION_KEYS
    from model.configs import DiTConfig

    assert DiTConfig().action_dim == ACTION_DIM == len(ACTION_KEYS) == 8


def test_no_layer_below_the_command_line_runs_a_higher_one_as_a_subprocess() -> None:
    """`python -m pipeline.cli ...` from unreal_bridge/ is an upward arrow the import check cannot see:
    the render server is launched as `python -m unreal_bridge.cli` (unreal_bridge/launch.py)."""
    found = []
    for path in sorted((REPO / "unreal_bridge").rglob("*.py")) + sorted((REPO / "contract").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.split(".")[0] in ("pipeline", "training"):
                if node.value.replace(".", "").replace("_", "").isalnum():  # a dotted module name, not prose
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}")
    assert not found, found
