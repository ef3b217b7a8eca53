"""The Parquet index: one row per clip, kept, rejected or failed.

Base columns are fixed (INDEX_BASE_COLUMNS); every score is an extra float64 column named
after the score, so new scores need no schema change and `select` can re-threshold without
reading a single shard. Rows are sorted by key; the file is written to a temporary name and
renamed.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

# name -> arrow type; documented in docs/shard-schema.md
INDEX_BASE_COLUMNS: dict[str, pa.DataType] = {
    "key": pa.string(),
    "status": pa.string(),            # kept | rejected | failed
    "shard": pa.string(),             # "shards/shard-NNNNNN.tar" for kept clips, "" otherwise
    "reason": pa.string(),            # rejection reasons joined by ",", "" when kept
    "error": pa.string(),             # last error for failed clips, "" otherwise
    "attempts": pa.int32(),           # render attempts used
    "caption": pa.string(),
    "source": pa.string(),            # synthetic | real
    "domain": pa.string(),            # e.g. procedural, unreal, real
    "manifest_name": pa.string(),
    "manifest_sha256": pa.string(),
    "resolved_sha256": pa.string(),
    "scene": pa.string(),
    "clip_index": pa.int32(),
    "frames": pa.int32(),
    "width": pa.int32(),
    "height": pa.int32(),
    "fps": pa.float64(),
    "renderer": pa.string(),          # backend + engine version
    "params_json": pa.string(),       # the resolved clip (or source parameters) as JSON
    "score_names": pa.list_(pa.string()),
    "embedding": pa.list_(pa.float32()),  # CLIP image embedding (L2-normalised), [] if none
    "member_sha256": pa.string(),     # JSON {extension: sha256 hex} of the sample's tar members, "" if not kept
}


def _coerce(column: str, value: Any) -> Any:
    if column in ("params_json", "member_sha256") and not isinstance(value, str) and value is not None:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value


def score_field(name: str) -> pa.Field:
    """A score column with its unit, range and description in the Parquet field metadata."""
    from pipeline.quality import score_info

    info = score_info(name)
    return pa.field(name, pa.float64(), metadata={
        "unit": str(info["unit"]), "range": json.dumps(info["range"]), "description": str(info["description"])})


def write_index(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write rows (dicts with base columns plus a `scores` dict) to `path` atomically."""
    rows = sorted(rows, key=lambda row: row["key"])
    score_names = sorted({name for row in rows for name in (row.get("scores") or {})})
    columns: dict[str, list[Any]] = {name: [] for name in INDEX_BASE_COLUMNS}
    for name in score_names:
        columns[name] = []
    for row in rows:
        scores = row.get("scores") or {}
        for name in INDEX_BASE_COLUMNS:
            if name == "score_names":
                columns[name].append(sorted(scores))
                continue
            value = row.get(name)
            if value is None:
                value = _default(INDEX_BASE_COLUMNS[name])
            columns[name].append(_coerce(name, value))
        for name in score_names:
            value = scores.get(name)
            columns[name].append(None if value is None else float(value))
    fields = [pa.field(name, dtype) for name, dtype in INDEX_BASE_COLUMNS.items()]
    if any(name in INDEX_BASE_COLUMNS for name in score_names):
        raise ValueError(f"score names collide with index columns: {sorted(set(score_names) & set(INDEX_BASE_COLUMNS))}")
    fields += [score_field(name) for name in score_names]
    table = pa.Table.from_pydict(columns, schema=pa.schema(fields))
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def _default(dtype: pa.DataType) -> Any:
    if pa.types.is_string(dtype):
        return ""
    if pa.types.is_integer(dtype):
        return 0
    if pa.types.is_floating(dtype):
        return 0.0
    if pa.types.is_list(dtype):
        return []
    return None


def read_index(path: Path):
    """The index as a pandas DataFrame (one row per clip)."""
    return pq.read_table(path).to_pandas()


def index_rows(path: Path) -> list[dict[str, Any]]:
    """The index back as row dicts with a `scores` dict, the shape `write_index` takes."""
    table = pq.read_table(path)
    out: list[dict[str, Any]] = []
    for record in table.to_pylist():
        names = record.get("score_names") or []
        record["scores"] = {name: record.pop(name) for name in names if name in record}
        for extra in [c for c in record if c not in INDEX_BASE_COLUMNS and c != "scores"]:
            record.pop(extra)
        out.append(record)
    return out
