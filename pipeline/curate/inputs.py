"""Expand the `curate` arguments into a sorted, de-duplicated list of input URIs.

An argument may be a video file, a folder (searched recursively for video extensions), a text
list (`.txt`/`.lst`, one path or URI per line, `#` comments) or a Parquet file with a `path`,
`uri` or `url` column. Remote URIs (s3://, gs://, http://, ...) are kept as URIs and opened
through fsspec later; local paths become absolute.

Symbolic links are followed to what they point at, except a link that cannot be resolved (a
loop, or a link to nothing) inside a folder or a list: it is kept as the link's own path, so
the probe records it in rejects with its reason (`symlink_loop`, `missing`) instead of the
input vanishing silently. Folder walks never descend into linked folders (a link to an
ancestor would otherwise recurse forever).
"""
from __future__ import annotations

from pathlib import Path

from contract.errors import UserError

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".flv", ".wmv", ".3gp", ".ogv"}
)
LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list"})
PARQUET_COLUMNS = ("path", "uri", "url")


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def _local(uri: str) -> str:
    return uri[len("file://"):] if uri.startswith("file://") else uri


def _from_parquet(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    for column in PARQUET_COLUMNS:
        if column in table.column_names:
            return [str(v) for v in table.column(column).to_pylist() if v]
    raise UserError(
        f"{path}: no column named {' / '.join(PARQUET_COLUMNS)}",
        hint=f"add a '{PARQUET_COLUMNS[0]}' column of video paths or URIs",
    )


def _from_list(path: Path) -> list[str]:
    entries = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            entries.append(line)
    return entries


def _absolute(path: Path) -> str:
    """The resolved path, or for a path that cannot be resolved (a link loop: RuntimeError on
    Python 3.11, OSError later; a dangling link; a missing file) the path itself, made
    absolute through its folder, so a reject names what the user wrote."""
    try:
        return str(path.resolve(strict=True))
    except (RuntimeError, OSError):
        return str(path.parent.resolve() / path.name)


def _resolve_relative(entry: str, base: Path) -> str:
    if is_remote(entry):
        return entry
    candidate = Path(_local(entry)).expanduser()
    if not candidate.is_absolute():
        candidate = base / candidate
    return _absolute(candidate)


def _walk(folder: Path) -> list[str]:
    """Video files under `folder` (hidden names skipped), plus every link that does not
    resolve (reported later as a reject). Linked folders are not entered."""
    found: list[str] = []
    for child in sorted(folder.rglob("*")):
        if child.name.startswith("."):
            continue
        if child.is_symlink() and not child.exists():        # a loop or a dangling link
            found.append(_absolute(child))
        elif child.is_file() and child.suffix.lower() in VIDEO_EXTENSIONS:
            found.append(str(child.resolve()))
    return found


def expand_inputs(arguments: list[str]) -> list[str]:
    """Return the input URIs in a stable order (sorted, duplicates removed)."""
    if not arguments:
        raise UserError("curate: no INPUT given", hint="pass video files, folders, a .txt list or a .parquet of paths")
    found: list[str] = []
    for argument in arguments:
        if is_remote(argument):
            found.append(argument)
            continue
        path = Path(_local(argument)).expanduser()
        if path.is_dir():
            found.extend(_walk(path))
        elif path.suffix.lower() == ".parquet" and path.is_file():
            found.extend(_resolve_relative(e, path.parent) for e in _from_parquet(path))
        elif path.suffix.lower() in LIST_EXTENSIONS and path.is_file():
            found.extend(_resolve_relative(e, path.parent) for e in _from_list(path))
        elif path.exists():
            found.append(str(path.resolve()))   # an explicit file: probe decides whether it is video
        elif path.is_symlink():
            found.append(_absolute(path))       # a link loop or a dangling link: a reject with its reason
        else:
            raise UserError(f"{argument}: no such file or folder", hint="check the INPUT path")
    return sorted(set(found))
