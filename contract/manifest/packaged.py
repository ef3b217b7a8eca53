"""Example manifests by name (`worldloom generate quickstart`), from any directory.

The examples live in `manifests/examples/` of the repository; `contract/manifest/example_manifests`
is a link to that folder that the package carries as package data (pyproject.toml), so an
installed worldloom finds them without a checkout.
"""
from __future__ import annotations

import difflib
from importlib.resources import files
from pathlib import Path

from contract.errors import UserError


def example_manifests() -> dict[str, Path]:
    folder = Path(str(files("contract.manifest") / "example_manifests"))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def find_manifest(name_or_path: str | Path) -> Path:
    """A manifest file path as given, or a packaged example's path by name (`quickstart`)."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    examples = example_manifests()
    stem = path.name.removesuffix(".yaml").removesuffix(".yml")
    if not path.parent.parts or path.parent.as_posix().endswith("manifests/examples"):
        if stem in examples:
            return examples[stem]
    close = difflib.get_close_matches(stem, list(examples), n=1)
    hint = f"did you mean `{close[0]}`?" if close else f"pass a manifest file or an example name: {', '.join(examples)}"
    raise UserError(f"{name_or_path}: manifest not found", hint=hint)
