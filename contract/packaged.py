"""Files shipped inside a package, found by name: example manifests, training configs.

Why one helper: `worldloom generate quickstart` and `worldloom train tiny_vae` both take either a
path or the name of a file the installed package carries, from any directory; both lookups
follow the same rule, so they live here. Only the standard library is used: the callers raise
their own `UserError` with their own wording from what `find_packaged` and `closest_name` return.

The rule: a name without a folder (`quickstart`, `quickstart.yaml`) or a path into the
repository's own folder of those files (`manifests/examples/quickstart.yaml` typed from another
directory) is the packaged file of that stem.
"""
from __future__ import annotations

import difflib
from importlib.resources import files
from pathlib import Path

SUFFIXES = (".yaml", ".yml")


def packaged_files(package: str, folder: str, pattern: str = "*.yaml") -> dict[str, Path]:
    """Stem -> path of the files matching `pattern` in `folder` of `package` (package data), sorted by path."""
    found = Path(str(files(package) / folder))
    return {p.stem: p for p in sorted(found.glob(pattern))} if found.is_dir() else {}


def stem_of(name_or_path: str | Path) -> str:
    """The file's name without a `.yaml` / `.yml` suffix."""
    name = Path(name_or_path).expanduser().name
    for suffix in SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def find_packaged(name_or_path: str | Path, packaged: dict[str, Path], repo_folder: str) -> Path | None:
    """The packaged file `name_or_path` names, or None.

    `repo_folder` is where the files live in a checkout (`manifests/examples`), so that path also
    finds them from any directory. The caller checks first whether `name_or_path` is an existing
    file of the user's: that one wins.
    """
    path = Path(name_or_path).expanduser()
    stem = stem_of(path)
    if stem in packaged and (not path.parent.parts or path.parent.as_posix().endswith(repo_folder)):
        return packaged[stem]
    return None


def closest_name(name_or_path: str | Path, packaged: dict[str, Path]) -> str | None:
    """The packaged name closest to the one given, for a did-you-mean; None when nothing is close."""
    close = difflib.get_close_matches(stem_of(name_or_path), list(packaged), n=1)
    return close[0] if close else None
