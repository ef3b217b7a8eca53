"""Where things live inside a dataset directory; one place so every writer agrees."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SHARD_PREFIX = "shard-"
SHARD_SUFFIX = ".tar"
TMP_SUFFIX = ".tmp"


def shard_name(number: int) -> str:
    """`shard-000042.tar`: zero-padded so lexical order is numeric order."""
    return f"{SHARD_PREFIX}{number:06d}{SHARD_SUFFIX}"


def shard_number(name: str) -> int:
    stem = Path(name).name
    if stem.endswith(TMP_SUFFIX):
        stem = stem[: -len(TMP_SUFFIX)]
    return int(stem[len(SHARD_PREFIX) : -len(SHARD_SUFFIX)])


@dataclass(frozen=True)
class DatasetLayout:
    """The file layout of one dataset directory (see docs/shard-schema.md)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def shards_dir(self) -> Path:
        return self.root / "shards"

    @property
    def index_path(self) -> Path:
        return self.root / "index.parquet"

    @property
    def dataset_json_path(self) -> Path:
        return self.root / "dataset.json"

    @property
    def journal_path(self) -> Path:
        return self.root / "journal.jsonl"

    def shard_path(self, number: int) -> Path:
        return self.shards_dir / shard_name(number)

    def tmp_shard_path(self, number: int) -> Path:
        return self.shards_dir / (shard_name(number) + TMP_SUFFIX)

    def complete_shards(self) -> list[Path]:
        """Committed shards, in order. Temporary shards never match this pattern."""
        if not self.shards_dir.is_dir():
            return []
        return sorted(self.shards_dir.glob(f"{SHARD_PREFIX}[0-9][0-9][0-9][0-9][0-9][0-9]{SHARD_SUFFIX}"))

    def temporary_files(self) -> list[Path]:
        """Anything a crashed or interrupted writer could leave behind."""
        found: list[Path] = []
        if self.shards_dir.is_dir():
            found += sorted(self.shards_dir.glob(f"*{TMP_SUFFIX}"))
        found += sorted(self.root.glob(f"*{TMP_SUFFIX}")) if self.root.is_dir() else []
        return found
