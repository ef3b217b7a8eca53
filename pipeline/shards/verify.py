"""Check a dataset: index and shards agree exactly, and every byte is what was written.

Problems are collected as one line each (naming the shard and the key), never raised, so
`worldloom verify` can list them all. Checked:

- every shard reads as a tar of `<plain key>.<extension>` members (a truncated or foreign file
  is reported by name, not a traceback);
- no sample is missing, extra, duplicated or in another shard than the index says;
- each kept sample's members hash to the index's `member_sha256`;
- each shard file hashes to `dataset.json`'s `shard_sha256` (when the dataset has one);
- no temporary file is left, and `dataset.json`'s counts match the index.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.shards.index import read_index
from pipeline.shards.integrity import DamagedShard, decode_digests, file_sha256, sample_matches
from pipeline.shards.keys import is_safe_key
from pipeline.shards.layout import DatasetLayout
from pipeline.shards.provenance import read_dataset_json
from pipeline.shards.writer import read_tar_samples


@dataclass
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    samples: int = 0
    shards: int = 0
    damaged_shards: list[str] = field(default_factory=list)   # "shards/shard-NNNNNN.tar"
    checked_digests: int = 0
    checked_shard_digests: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_dataset(dataset: Path | str, *, required_members: tuple[str, ...] = ("mp4", "json"),
                   digests: bool = True) -> VerifyReport:
    layout = DatasetLayout(Path(dataset))
    report = VerifyReport()
    if not layout.index_path.exists():
        report.problems.append(f"{layout.index_path} is missing")
        return report
    try:
        index = read_index(layout.index_path)
    except Exception as error:  # a damaged index is a finding, not a crash
        report.problems.append(f"{layout.index_path}: unreadable ({type(error).__name__}: {str(error)[:120]})")
        return report
    document: dict = {}
    if layout.dataset_json_path.exists():
        try:
            document = read_dataset_json(layout.dataset_json_path)
        except (OSError, ValueError) as error:
            report.problems.append(f"{layout.dataset_json_path}: unreadable ({error})")
    duplicated = [k for k, n in Counter(index["key"]).items() if n > 1]
    if duplicated:
        report.problems.append(f"index has duplicate keys: {duplicated[:5]}")
    unsafe = [k for k in index["key"] if not is_safe_key(k)]
    if unsafe:
        report.problems.append(f"index has keys that are not plain names: {[str(k)[:40] for k in unsafe[:3]]}")
    kept = index[index["status"] == "kept"]
    expected = dict(zip(kept["key"], kept["shard"], strict=False))
    expected_digests = (dict(zip(kept["key"], kept["member_sha256"], strict=False)) if digests and "member_sha256" in kept
                        else {})
    seen: dict[str, str] = {}
    shard_digests: dict[str, str] = dict(document.get("shard_sha256") or {}) if digests else {}
    for shard in layout.complete_shards():
        report.shards += 1
        name = f"shards/{shard.name}"
        if name in shard_digests:
            report.checked_shard_digests += 1
            actual = file_sha256(shard)
            if actual != shard_digests[name]:
                report.problems.append(f"{name}: sha256 {actual[:12]}… differs from dataset.json's {shard_digests[name][:12]}…")
                if name not in report.damaged_shards:
                    report.damaged_shards.append(name)
        try:
            for key, members in read_tar_samples(shard):
                report.samples += 1
                if key in seen:
                    report.problems.append(f"{key} appears twice ({seen[key]} and {name})")
                seen[key] = name
                missing = [m for m in required_members if m not in members]
                if missing:
                    report.problems.append(f"{key} in {name} lacks members {missing}")
                if key not in expected:
                    report.problems.append(f"{key} is in {name} but not kept in the index")
                elif expected[key] != name:
                    report.problems.append(f"{key} is in {name} but the index says {expected[key]}")
                recorded = decode_digests(expected_digests.get(key))
                if recorded is not None:
                    report.checked_digests += 1
                    difference = sample_matches(members, recorded)
                    if difference:
                        report.problems.append(f"{key} in {name}: {difference}")
                        if name not in report.damaged_shards:
                            report.damaged_shards.append(name)
        except DamagedShard as error:
            report.problems.append(f"{name}: damaged ({error.reason})")
            if name not in report.damaged_shards:
                report.damaged_shards.append(name)
    for key, name in expected.items():
        if key not in seen:
            report.problems.append(f"{key} is kept in the index ({name}) but in no shard")
    not_kept_in_shards = set(index.loc[index["status"] != "kept", "key"]) & set(seen)
    for key in sorted(not_kept_in_shards):
        report.problems.append(f"{key} is not kept in the index but is in a shard")
    for leftover in layout.temporary_files():
        report.problems.append(f"temporary file left: {leftover}")
    if document:
        counts = document.get("counts", {})
        status_counts = index["status"].value_counts().to_dict()
        for status in ("kept", "rejected", "failed"):
            if status in counts and counts[status] != status_counts.get(status, 0):
                report.problems.append(
                    f"dataset.json counts {status}={counts[status]} but the index has {status_counts.get(status, 0)}"
                )
    return report
