"""Copy chosen samples from existing datasets into a new one, byte for byte.

Used by `select` and `mix`: no decode, no model; the members are the source's bytes and the
index rows are the source's rows with the new shard names. Sources are read sequentially,
shard by shard (the cheap way to read tar files); the interleaving of several sources is
decided from counts alone, so memory stays bounded and the output is deterministic.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.errors import UserError
from pipeline.shards import DatasetLayout, ShardWriter, iter_samples, read_dataset_json, write_index
from pipeline.shards.index import index_rows
from pipeline.shards.integrity import decode_digests, sample_matches
from pipeline.shards.writer import DEFAULT_MAX_BYTES


@dataclass
class SourcePick:
    dataset: Path
    rows: dict[str, dict[str, Any]]     # key -> index row (with scores) of the samples to copy


def load_kept_rows(dataset: Path) -> list[dict[str, Any]]:
    layout = DatasetLayout(Path(dataset))
    if not layout.index_path.is_file():
        raise UserError(f"{dataset}: no index.parquet", hint="pass a dataset folder written by generate, curate, select or mix")
    if layout.dataset_json_path.is_file():
        status = read_dataset_json(layout.dataset_json_path).get("status")
        if status != "complete":
            raise UserError(f"{dataset}: dataset is {status!r}", hint="finish (resume) the run that writes it first")
    return [row for row in index_rows(layout.index_path) if row["status"] == "kept"]


def _interleave(counts: list[int]) -> list[int]:
    """Source number for each output position: item j of source i sits at (j + 0.5) / n_i."""
    slots = [((j + 0.5) / n, i) for i, n in enumerate(counts) for j in range(n)]
    return [i for _, i in sorted(slots)]


def _samples(pick: SourcePick) -> Iterator[tuple[str, dict[str, bytes]]]:
    for sample in iter_samples(pick.dataset, decode=False, keys=set(pick.rows)):
        key = sample.pop("__key__")
        sample.pop("__shard__")
        yield key, sample


def write_picks(out: Path, picks: list[SourcePick], document: dict[str, Any], *, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[int, list[str]]:
    """Write the picked samples to `out` (a new folder) atomically; returns (samples, shards)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: exists and is not empty", hint="choose a new --out folder")
    for pick in picks:
        if out.resolve() == Path(pick.dataset).resolve():
            raise UserError(f"{out}: is also a source", hint="write to a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        layout = DatasetLayout(staging)
        writer = ShardWriter(layout, max_bytes=max_bytes)
        iterators = [_samples(pick) for pick in picks]
        rows: list[dict[str, Any]] = []
        for source in _interleave([len(p.rows) for p in picks]):
            try:
                key, members = next(iterators[source])
            except StopIteration:
                raise UserError(f"{picks[source].dataset}: index lists clips that are in no shard",
                                hint="run the dataset verifier; the source is damaged") from None
            row = dict(picks[source].rows[key])
            row["shard"] = writer.write(key, members)
            recorded = decode_digests(row.get("member_sha256"))
            difference = sample_matches(members, recorded)
            if difference:  # never copy damage into a new dataset
                raise UserError(f"{picks[source].dataset}: {key}: {difference}",
                                hint="run `worldloom verify` on the source and re-make it first")
            row["member_sha256"] = dict(writer.last_member_sha256)
            rows.append(row)
        writer.close()
        write_index(layout.index_path, rows)
        from pipeline.quality import score_info
        from pipeline.shards import write_dataset_json

        document = {**document, "status": "complete", "shards": writer.committed,
                    "shard_sha256": dict(sorted(writer.shard_sha256.items())),
                    "scores": {name: score_info(name) for name in sorted({n for r in rows for n in (r.get("scores") or {})})},
                    "counts": {"requested": len(rows), "kept": len(rows), "rejected": 0, "failed": 0}}
        write_dataset_json(layout.dataset_json_path, document)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return len(rows), writer.committed
