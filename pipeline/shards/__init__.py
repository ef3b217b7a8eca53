"""WebDataset shards, the Parquet index and `dataset.json`: the on-disk dataset format.

Shared by `generate`, `curate`, `select` and `mix`; the layout and every member are written
down in docs/shard-schema.md. The pieces:

- `ShardWriter`    appends samples to `shards/shard-NNNNNN.tar.tmp`, renames to `.tar` when full
- `Journal`        one JSON line per finished clip; the resume record while a run is going
- `write_index` / `read_index`   the Parquet index (one row per clip, kept or not)
- `write_dataset_json` / `read_dataset_json`   provenance
- `iter_samples`   read samples back (decoded), `verify_dataset` checks index == shards exactly
- `members`        deterministic encoders for `.npy`, `.npz`, `.json` members
- `integrity`      sha256 per member (index) and per shard (dataset.json), `DamagedShard`
- `keys`           the one check that a sample key is a plain name before it touches a path
"""
from pipeline.shards.index import INDEX_BASE_COLUMNS, read_index, write_index
from pipeline.shards.integrity import DamagedShard, decode_digests, file_sha256, member_digests, sample_matches
from pipeline.shards.journal import Journal
from pipeline.shards.keys import UnsafeKey, check_key, is_safe_key, key_path
from pipeline.shards.layout import DatasetLayout, shard_name
from pipeline.shards.members import (
    decode_member,
    encode_json,
    encode_npy,
    encode_npz,
)
from pipeline.shards.provenance import code_version, read_dataset_json, write_dataset_json
from pipeline.shards.reader import iter_samples
from pipeline.shards.verify import VerifyReport, verify_dataset
from pipeline.shards.writer import ShardWriter, read_tar_samples

__all__ = [
    "DatasetLayout",
    "shard_name",
    "ShardWriter",
    "read_tar_samples",
    "Journal",
    "INDEX_BASE_COLUMNS",
    "read_index",
    "write_index",
    "read_dataset_json",
    "write_dataset_json",
    "code_version",
    "iter_samples",
    "VerifyReport",
    "verify_dataset",
    "encode_json",
    "encode_npy",
    "encode_npz",
    "decode_member",
    "DamagedShard",
    "decode_digests",
    "file_sha256",
    "member_digests",
    "sample_matches",
    "UnsafeKey",
    "check_key",
    "is_safe_key",
    "key_path",
]
