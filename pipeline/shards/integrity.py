"""What is hashed, and the error a damaged shard raises.

Two digests are stored when a dataset is written (docs/shard-schema.md, "Integrity"):

- per sample, `member_sha256` in the index: `{"mp4": "<sha256 hex>", "json": ..., ...}` as a JSON
  string, one entry per tar member, computed from the bytes the writer put into the tar. It is
  what generate's resume, `worldloom verify` and the training loader check sample by sample.
- per shard, `shard_sha256` in `dataset.json`: `{"shards/shard-000000.tar": "<sha256 hex>"}` of
  the committed file, checked by `worldloom verify` (it also catches damage in tar headers or
  padding that no member digest covers).

A shard that cannot be read (truncated, not a tar, a key that is not a plain name) raises
`DamagedShard`, a `UserError` naming the file, never a traceback.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from contract.errors import UserError

_CHUNK = 1 << 20


class DamagedShard(UserError):
    """A shard that is truncated, not a tar, or holds members that are not plain `<key>.<ext>` names."""

    exit_code = 1

    def __init__(self, shard: Path | str, reason: str) -> None:
        self.shard = str(shard)
        self.reason = reason
        super().__init__(f"{shard}: damaged shard ({reason})",
                         hint="run `worldloom verify DATASET`; re-run generate to re-make it, or remove it")

    def __reduce__(self):  # picklable across Ray and DataLoader processes
        return (DamagedShard, (self.shard, self.reason))


def member_digests(members: Mapping[str, bytes]) -> dict[str, str]:
    """extension -> sha256 hex of the member's bytes."""
    return {extension: hashlib.sha256(data).hexdigest() for extension, data in members.items()}


def encode_digests(digests: Mapping[str, str]) -> str:
    """The index's `member_sha256` cell: sorted, compact JSON."""
    return json.dumps(dict(digests), sort_keys=True, separators=(",", ":"))


def decode_digests(cell: Any) -> dict[str, str] | None:
    """`member_sha256` back as a dict; None when the index predates it (no check possible)."""
    if isinstance(cell, dict):
        return dict(cell)
    if not cell or not isinstance(cell, str):
        return None
    try:
        value = json.loads(cell)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def sample_matches(members: Mapping[str, bytes], digests: Mapping[str, str] | None) -> str | None:
    """None when `members` hash to `digests` (or there is nothing to check), else what differs."""
    if digests is None:
        return None
    if set(members) != set(digests):
        return f"members {sorted(members)} but the index lists {sorted(digests)}"
    for extension, data in members.items():
        if hashlib.sha256(data).hexdigest() != digests[extension]:
            return f"member {extension} has sha256 {hashlib.sha256(data).hexdigest()[:12]}…, the index says {digests[extension][:12]}…"
    return None


def file_sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
