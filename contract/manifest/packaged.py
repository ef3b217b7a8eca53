"""Example manifests by name (`worldloom generate quickstart`), from any directory.

The examples live in `manifests/examples/` of the repository; `contract/manifest/example_manifests`
is a link to that folder that the package carries as package data (pyproject.toml), so an
installed worldloom finds them without a checkout.
"""
from __future__ import annotations

from pathlib import Path

from contract.errors import UserError
from contract.packaged import closest_name, find_packaged, packaged_files


def example_manifests() -> dict[str, Path]:
    """The packaged example manifests by name (`quickstart`, ...)."""
    return packaged_files("contract.manifest", "example_manifests")


def find_manifest(name_or_path: str | Path) -> Path:
    """A manifest file path as given, or a packaged example's path by name (`quickstart`)."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    examples = example_manifests()
    found = find_packaged(path, examples, "manifests/examples")
    if found is not None:
        return found
    close = closest_name(path, examples)
    hint = f"did you mean `{close}`?" if close else f"pass a manifest file or an example name: {', '.join(examples)}"
    raise UserError(f"{name_or_path}: manifest not found", hint=hint)
