"""`worldloom verify DATASET`: is every byte of a dataset what was written?"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from contract.errors import UserError


@click.command("verify")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--max-problems", type=int, default=20, show_default=True, help="problems listed (all are counted)")
def verify_command(dataset: Path, max_problems: int) -> None:
    """Check DATASET: index == shards, sha256 of every member and shard, no leftovers.

    Exit 0 when clean, 1 when anything is wrong (each problem one line naming shard and key).
    """
    from pipeline.shards import DatasetLayout, verify_dataset

    layout = DatasetLayout(dataset)
    if not dataset.is_dir():
        raise UserError(f"{dataset}: not a directory", hint="pass the --out folder of generate, curate, select or mix")
    if not layout.index_path.exists():
        raise UserError(f"{dataset}: no index.parquet", hint="pass a dataset folder written by generate, curate, select "
                        "or mix (an interrupted generate has none until it is resumed)")
    report = verify_dataset(dataset)
    summary = (f"{dataset}: {report.shards} shards, {report.samples} samples, {report.checked_digests} samples and "
               f"{report.checked_shard_digests} shards checked against their sha256")
    if report.ok:
        click.secho(f"ok: {summary}", fg="green")
        return
    for problem in report.problems[:max_problems]:
        click.secho(f"  {problem}", fg="red", err=True)
    if len(report.problems) > max_problems:
        click.secho(f"  ... and {len(report.problems) - max_problems} more", fg="red", err=True)
    damaged = f"; damaged shards: {', '.join(report.damaged_shards)}" if report.damaged_shards else ""
    click.secho(f"error: {len(report.problems)} problem(s) in {summary}{damaged}; re-run the command that wrote "
                "the dataset to re-make damaged shards (generate resumes), or restore them from a copy", fg="red", err=True)
    sys.exit(1)
