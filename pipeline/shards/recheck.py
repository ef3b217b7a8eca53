"""Re-check committed shards before a run builds on them (generate's resume).

A committed shard is trusted only if it holds exactly the samples the run's records (journal
or index) place in it, in a readable tar, each hashing to its recorded `member_sha256`. Any
other shard (flipped bytes, truncated, not a tar, or a file no run of this dataset wrote) is
reported by name and moved to `DATASET/quarantine/`; its clips are then rendered again. Nothing
is deleted: a quarantined file can be inspected, then removed by hand.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.shards.integrity import DamagedShard, decode_digests, sample_matches
from pipeline.shards.layout import DatasetLayout
from pipeline.shards.writer import read_tar_samples

QUARANTINE_DIR = "quarantine"


def check_committed_shards(layout: DatasetLayout, rows: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """shard name ("shards/shard-NNNNNN.tar") -> why it cannot be trusted, for every bad committed shard."""
    placed: dict[str, set[str]] = {}
    for key, row in rows.items():
        if row.get("status") == "kept" and row.get("shard"):
            placed.setdefault(row["shard"], set()).add(key)
    bad: dict[str, str] = {}
    for shard in layout.complete_shards():
        name = f"shards/{shard.name}"
        expected = placed.get(name)
        if not expected:
            bad[name] = "no run of this dataset recorded writing it"
            continue
        seen: set[str] = set()
        try:
            for key, members in read_tar_samples(shard):
                if key not in expected or key in seen:
                    bad[name] = f"holds sample {key}, which the run's records do not place there"
                    break
                difference = sample_matches(members, decode_digests(rows[key].get("member_sha256")))
                if difference:
                    bad[name] = f"sample {key}: {difference}"
                    break
                seen.add(key)
        except DamagedShard as error:
            bad[name] = error.reason
            continue
        if name not in bad and seen != expected:
            missing = sorted(expected - seen)
            bad[name] = f"lacks {len(missing)} sample(s) the run's records place there (first {missing[0]})"
    return bad


def quarantine(layout: DatasetLayout, name: str) -> Path:
    """Move `shards/<file>` to `quarantine/<file>` (a numbered suffix if taken); returns the new path."""
    source = layout.root / name
    folder = layout.root / QUARANTINE_DIR
    folder.mkdir(exist_ok=True)
    target = folder / source.name
    number = 1
    while target.exists():
        target = folder / f"{source.name}.{number}"
        number += 1
    os.replace(source, target)
    return target


def remake_if_damaged(layout: DatasetLayout, existing: Mapping[str, Any], uris: list[str], config_json: str) -> bool:
    """curate's resume: True when the folder holds this exact dataset (same inputs, same config)
    but it fails `verify_dataset`, so curate must re-make it from its inputs instead of
    reporting it complete. Prints one warning naming the damaged shards."""
    import json

    import click

    from pipeline.shards.verify import verify_dataset

    same = existing.get("input_list") == uris and json.dumps(existing.get("config"), sort_keys=True) == json.dumps(
        json.loads(config_json), sort_keys=True)
    if not same:
        return False
    report = verify_dataset(layout.root)
    if report.ok:
        return False
    named = ", ".join(report.damaged_shards) or report.problems[0]
    click.secho(f"warning: {layout.root} is complete but damaged ({named}; {len(report.problems)} problem(s)): "
                "curating it again from its inputs", fg="yellow", err=True)
    return True
