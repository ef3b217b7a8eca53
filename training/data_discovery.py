"""Where a source's shards are, and what they are: shard lists, the index beside them, lineage.

`--data` takes a dataset folder (its `shards/*.tar`), a folder of tars, a tar, a glob or a brace
pattern (local or remote); `resolve_shards` turns each into the sorted shard URLs every reader
splits the same way. A dataset's `index.parquet` names every clip with its sha256: its own
sha256 is the source's content hash for MLflow lineage, and its `member_sha256` column is what
the readers check each sample against.
"""
from __future__ import annotations

import glob
import hashlib
import os
from pathlib import Path
from typing import Any

import webdataset as wds

from contract.errors import UserError


def resolve_shards(path: str) -> list[str]:
    """A dataset folder (shards/*.tar), a folder of tars, a tar, a glob or a brace pattern -> sorted URLs."""
    if "://" in path and not path.startswith("file://"):
        return sorted(wds.shardlists.expand_urls(path))
    local = path.removeprefix("file://")
    candidate = Path(local)
    if candidate.is_dir():
        tars = sorted(str(p) for p in (candidate / "shards").glob("*.tar")) or sorted(
            str(p) for p in candidate.glob("*.tar")
        )
        if not tars:
            raise UserError(f"--data {path}: no .tar shards in the folder or its shards/ subfolder",
                            hint="point --data at a dataset written by `worldloom generate`")
        return tars
    if candidate.is_file():
        return [str(candidate)]
    expanded = [u for pattern in wds.shardlists.expand_urls(local) for u in sorted(glob.glob(pattern))]
    if not expanded:
        raise UserError(f"--data {path}: no such file, folder or matching shards",
                        hint="pass a dataset folder, a .tar, or a pattern like data/shards/{000000..000009}.tar")
    return sorted(expanded)


def provenance(sources: list[tuple[str, float]]) -> dict[str, Any]:
    """Shard list and a content hash per source, for MLflow lineage.

    The hash is the sha256 of the dataset's index.parquet when there is one (it names every clip
    and its sha256), else of the shard names and sizes.
    """
    out = []
    for path, weight in sources:
        shards = resolve_shards(path)
        index = index_file(path)
        digest = hashlib.sha256()
        if index is not None:
            digest.update(index.read_bytes())
        else:
            for url in shards:
                size = os.path.getsize(url) if os.path.exists(url) else -1
                digest.update(f"{os.path.basename(url)}:{size}\n".encode())
        out.append({"path": path, "weight": weight, "shards": shards,
                    "index": str(index) if index else None, "index_sha256": digest.hexdigest()})
    return {"sources": out}


def index_file(path: str) -> Path | None:
    candidate = Path(path.removeprefix("file://"))
    for name in ("index.parquet",):
        for folder in (candidate, candidate.parent, candidate.parent.parent):
            if folder.is_dir() and (folder / name).is_file():
                return folder / name
    return None


_DIGESTS: dict[str, dict[str, tuple[str, str]]] = {}   # index path -> key -> (shard, member_sha256), per process


def index_digests(url: str) -> dict[str, tuple[str, str]]:
    """key -> (shard name, member_sha256 JSON) of kept rows of the index beside `url`; {} without an index."""
    index = index_file(url)
    if index is None:
        return {}
    cached = _DIGESTS.get(str(index))
    if cached is None:
        import pyarrow.parquet as pq

        try:
            columns = pq.read_schema(index).names
            wanted = [c for c in ("key", "status", "shard", "member_sha256") if c in columns]
            table = pq.read_table(index, columns=wanted).to_pydict()
        except Exception:
            table = {}
        cached = {}
        if "member_sha256" in table:
            columns = (table["key"], table["status"], table["shard"], table["member_sha256"])
            for key, status, shard, digests in zip(*columns, strict=True):  # columns of one table
                if status == "kept" and digests:
                    cached[key] = (shard, digests)
        _DIGESTS[str(index)] = cached
    return cached
