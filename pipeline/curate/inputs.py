"""Expand the `curate` arguments into a sorted, de-duplicated list of input URIs.

An argument may be a video file, a folder (searched recursively for video extensions), a text
list (`.txt`/`.lst`, one path or URI per line, `#` comments) or a Parquet file with a `path`,
`uri` or `url` column. Remote URIs (s3://, gs://, http://, ...) are kept as URIs and opened
through fsspec later; local paths become absolute.
"""
from __future__ import annotations

from pathlib import Path

from pipeline.errors import UserError

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


def _resolve_relative(entry: str, base: Path) -> str:
    if is_remote(entry):
        return entry
    candidate = Path(_local(entry)).expanduser()
    if not candidate.is_absolute():
        candidate = base / candidate
    return str(candidate.resolve())


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
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in VIDEO_EXTENSIONS and not child.name.startswith("."):
                    found.append(str(child.resolve()))
        elif path.suffix.lower() == ".parquet" and path.is_file():
            found.extend(_resolve_relative(e, path.parent) for e in _from_parquet(path))
        elif path.suffix.lower() in LIST_EXTENSIONS and path.is_file():
            found.extend(_resolve_relative(e, path.parent) for e in _from_list(path))
        elif path.exists():
            found.append(str(path.resolve()))   # an explicit file: probe decides whether it is video
        else:
            raise UserError(f"{argument}: no such file or folder", hint="check the INPUT path")
    return sorted(set(found))
