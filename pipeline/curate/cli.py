"""Click commands `worldloom curate`, `worldloom select` and `worldloom mix` (registered lazily
in pipeline/cli.py). Heavy imports happen inside the commands."""
from __future__ import annotations

from pathlib import Path

import click


def _print_summary(title: str, lines: list[tuple[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for name, value in lines:
        table.add_row(name, value)
    Console(stderr=False).print(table)


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{name}={count}" for name, count in counts.items()) or "none"


@click.command("curate")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), help="dataset folder to write")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help="curate YAML (see docs/curate.md)")
@click.option("--domain", default="real", show_default=True, help="domain tag written to every clip (e.g. dashcam, drone)")
@click.option("--workers", type=int, default=None, help="CPUs of the local Ray instance curate starts (default: all)")
@click.option("--ray-address", default=None, help="join this Ray cluster instead of starting a local instance")
@click.option("--quiet", is_flag=True, help="no progress bar")
def curate(inputs: tuple[str, ...], out: Path, config_path: Path | None, domain: str, workers: int | None,
           ray_address: str | None, quiet: bool) -> None:
    """Curate real footage (files, folders, .txt lists, .parquet of paths/URIs) into shards."""
    import re

    from contract.errors import UserError
    from pipeline.curate.config import load_curate_config
    from pipeline.curate.run import run_curate

    if not re.fullmatch(r"[a-z0-9_]+", domain):
        raise UserError(f"--domain {domain!r}: must match [a-z0-9_]+", hint="e.g. --domain dashcam")
    config = load_curate_config(config_path)
    summary = run_curate(list(inputs), out, config, domain=domain, show_progress=not quiet, num_cpus=workers,
                         ray_address=ray_address)
    if summary.already_complete:
        click.echo(f"{out} already holds this dataset (same inputs and config): nothing to do")
    _print_summary("worldloom curate", [
        ("inputs", f"{summary.inputs} ({summary.processed_now} processed now, {summary.inputs - summary.processed_now} done earlier)"),
        ("inputs rejected", _reasons(summary.inputs_rejected)),
        ("inputs failed", str(summary.inputs_failed)),
        ("clips", f"{summary.clips} ({summary.kept} kept)"),
        ("clips rejected", _reasons(summary.rejected_by_reason)),
        ("shards", str(summary.shards)),
        ("throughput", "-" if summary.already_complete else
         f"{summary.video_seconds:.1f} video-s in {summary.wall_s:.1f} s = {summary.video_seconds_per_wall_second:.2f} video-s per s"),
        ("output", str(out)),
    ])


@click.command("select")
@click.argument("dataset", type=click.Path(file_okay=False, path_type=Path))
@click.option("--where", "where", required=True, help='filter on index columns, e.g. "motion > 0.3 and aesthetic >= 4.5"')
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path))
def select(dataset: Path, where: str, out: Path) -> None:
    """Re-shard the clips of DATASET matching --where, without re-running any model."""
    from pipeline.curate.select import run_select

    summary = run_select(dataset, where, out)
    _print_summary("worldloom select", [
        ("source", str(dataset)), ("where", where),
        ("matched", f"{summary.selected} of {summary.candidates} kept clips"),
        ("shards", str(summary.shards)), ("output", str(out)),
    ])


@click.command("mix")
@click.option("--source", "sources", multiple=True, required=True, metavar="NAME=DIR:WEIGHT",
              help="a dataset and its share, e.g. real=data/real:0.3 (repeat)")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--total", type=int, default=None, help="clips in the mixture (default: the most the weights allow without repeats)")
def mix(sources: tuple[str, ...], out: Path, seed: int, total: int | None) -> None:
    """Build a deterministic fine-tuning mixture of datasets at the given shares."""
    from pipeline.curate.mix import parse_source, run_mix

    summary = run_mix([parse_source(text) for text in sources], out, seed=seed, total=total)
    _print_summary("worldloom mix", [
        *[(f"source {name}", f"{count} clips (weight {weight:g})") for name, count, weight in summary.per_source],
        ("total", str(summary.total)), ("shards", str(summary.shards)), ("output", str(out)),
    ])
