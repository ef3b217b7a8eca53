"""Which folders are worldloom datasets, and removing one without touching anything else.

`generate --overwrite` once deleted a user's unrelated `shards/` and `inspect/` folders. The
rules now: a folder is a worldloom dataset only if it has a `dataset.json` with this project's
schema (generate writes one before anything else); `remove_dataset` refuses any other folder
and deletes only what the dataset lists: its shards (dataset.json and the index/journal rows),
the writer's own `shard-NNNNNN.tar.tmp` files, its fixed files, and the inspect outputs of its
keys. Empty folders left behind are removed; anything else stays.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from contract.errors import UserError
from pipeline.shards.keys import is_safe_key
from pipeline.shards.layout import DatasetLayout
from pipeline.shards.provenance import SCHEMA

FIXED_FILES = ("index.parquet", "dataset.json", "journal.jsonl", "contact_sheet.png", "rejects.parquet")
WRITTEN_NAMES = ("shards", "index.parquet", "journal.jsonl")   # what a run writes besides dataset.json


def dataset_document(layout: DatasetLayout) -> dict[str, Any] | None:
    """This project's dataset.json, or None when there is none (or it is someone else's file)."""
    try:
        document = json.loads(layout.dataset_json_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        return None
    return document


def check_writable_here(layout: DatasetLayout, created_by: str) -> dict[str, Any] | None:
    """Refuse a folder that holds dataset files no worldloom `created_by` run recorded.

    Returns the existing dataset.json (None for a fresh folder). Unrelated files in the folder
    are fine; a `shards/`, `index.parquet` or journal without our dataset.json is not.
    """
    document = dataset_document(layout)
    if document is None:
        present = [name for name in WRITTEN_NAMES if (layout.root / name).exists()]
        if present:
            raise UserError(f"{layout.root}: holds {', '.join(present)} but no dataset.json written by worldloom",
                            hint="choose an empty or new --out folder; nothing was changed")
        return None
    if document.get("created_by") not in (None, created_by):
        raise UserError(f"{layout.root}: holds a dataset made by {document.get('created_by')!r}",
                        hint=f"choose a new --out folder for {created_by}; nothing was changed")
    return document


def remove_dataset(layout: DatasetLayout, rows: Iterable[dict[str, Any]] = ()) -> list[Path]:
    """Delete the dataset at `layout.root` and only it; returns what was deleted.

    A folder that does not exist or holds none of our files is left alone; a folder with
    dataset files but without this project's dataset.json raises `UserError` (nothing deleted).
    """
    root = layout.root
    if not root.exists():
        return []
    document = dataset_document(layout)
    if document is None:
        present = [name for name in (*WRITTEN_NAMES, "dataset.json", "inspect") if (root / name).exists()]
        if present:
            raise UserError(f"{root}: refusing to delete {', '.join(present)}: the folder has no dataset.json "
                            "written by worldloom", hint="choose another --out, or delete the folder yourself")
        return []
    shard_names: set[str] = set(document.get("shards") or [])
    keys: set[str] = set()
    for row in rows:
        if row.get("shard"):
            shard_names.add(row["shard"])
        keys.add(row.get("key", ""))
    removed: list[Path] = []

    def unlink(path: Path) -> None:
        if path.is_file() or path.is_symlink():
            path.unlink()
            removed.append(path)

    for name in sorted(shard_names):
        path = root / name
        if path.parent == layout.shards_dir:    # only names inside shards/
            unlink(path)
    if layout.shards_dir.is_dir():
        for temporary in layout.shards_dir.glob("shard-[0-9][0-9][0-9][0-9][0-9][0-9].tar.tmp"):
            unlink(temporary)
    for name in FIXED_FILES:
        unlink(root / name)
        unlink(root / f"{name}.tmp")
    inspect = root / "inspect"
    unlink(inspect / "contact_sheet.png")
    for key in keys:
        if is_safe_key(key):
            unlink(inspect / "previews" / f"{key}.gif")
    for folder in (inspect / "previews", inspect, layout.shards_dir):
        try:
            folder.rmdir()        # only when empty: the user's own files stay
        except OSError:
            pass
    return removed
