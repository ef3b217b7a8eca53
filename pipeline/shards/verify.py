"""Check that the index and the shards agree exactly (no missing, extra or duplicate samples)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.shards.index import read_index
from pipeline.shards.layout import DatasetLayout
from pipeline.shards.provenance import read_dataset_json
from pipeline.shards.writer import read_tar_samples


@dataclass
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    samples: int = 0
    shards: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_dataset(dataset: Path | str, *, required_members: tuple[str, ...] = ("mp4", "json")) -> VerifyReport:
    layout = DatasetLayout(Path(dataset))
    report = VerifyReport()
    if not layout.index_path.exists():
        report.problems.append(f"{layout.index_path} is missing")
        return report
    index = read_index(layout.index_path)
    duplicated = [k for k, n in Counter(index["key"]).items() if n > 1]
    if duplicated:
        report.problems.append(f"index has duplicate keys: {duplicated[:5]}")
    kept = index[index["status"] == "kept"]
    expected = dict(zip(kept["key"], kept["shard"]))
    seen: dict[str, str] = {}
    for shard in layout.complete_shards():
        report.shards += 1
        name = f"shards/{shard.name}"
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
    for key, name in expected.items():
        if key not in seen:
            report.problems.append(f"{key} is kept in the index ({name}) but in no shard")
    not_kept_in_shards = set(index.loc[index["status"] != "kept", "key"]) & set(seen)
    for key in sorted(not_kept_in_shards):
        report.problems.append(f"{key} is not kept in the index but is in a shard")
    for leftover in layout.temporary_files():
        report.problems.append(f"temporary file left: {leftover}")
    if layout.dataset_json_path.exists():
        counts = read_dataset_json(layout.dataset_json_path).get("counts", {})
        status_counts = index["status"].value_counts().to_dict()
        for status in ("kept", "rejected", "failed"):
            if status in counts and counts[status] != status_counts.get(status, 0):
                report.problems.append(
                    f"dataset.json counts {status}={counts[status]} but the index has {status_counts.get(status, 0)}"
                )
    return report
