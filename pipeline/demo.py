"""`worldloom demo`: the main job end to end on the embedded defaults.

generate the quickstart dataset (procedural render servers on loopback, local Ray) -> train the
tiny autoencoder -> train the tiny world model on its latents -> sample a rollout. Every step is
the same code path a user runs by hand; the demo only chains them and says where things went.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = REPO_ROOT / "manifests" / "examples" / "quickstart.yaml"
TINY_VAE = REPO_ROOT / "training" / "configs" / "tiny_vae.yaml"
TINY_WORLD = REPO_ROOT / "training" / "configs" / "tiny_world.yaml"


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/demo"), show_default=True,
              help="Folder for the dataset, checkpoints, MLflow store and the sampled video.")
@click.option("--vae-steps", type=int, default=None, help="Override the tiny VAE step count.")
@click.option("--world-steps", type=int, default=None, help="Override the tiny world-model step count.")
@click.option("--seconds", type=float, default=4.0, show_default=True, help="Length of the sampled rollout.")
def demo(out: Path, vae_steps: int | None, world_steps: int | None, seconds: float) -> None:
    """Generate the quickstart dataset, train `tiny` (vae, then world) on 2 Ray workers, sample."""
    from pipeline.generate.cli import generate
    from pipeline.mlflow_store import ui_command
    from pipeline.ray_runtime import init_ray
    from training import api

    console = Console()
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    # One store for the data run, both training runs and later evals: the demo folder is the
    # project's runs folder ($MLFLOW_TRACKING_URI still wins).
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{out / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    started = time.monotonic()

    # Four logical CPUs on small machines: two training workers plus a data stage fit at once.
    # A local instance unless --ray-address/$RAY_ADDRESS names a cluster (pipeline/ray_runtime.py).
    init_ray(None, num_cpus=max(4, os.cpu_count() or 2))

    console.rule("[bold]1/4 generate the quickstart dataset")
    data_dir = out / "data"
    # The same command a user types, so the demo shows its progress and summary table.
    generate.main(args=[str(QUICKSTART), "--out", str(data_dir)], standalone_mode=False)

    console.rule("[bold]2/4 train the tiny video autoencoder (2 Ray workers)")
    storage = out / "train"
    # Each demo run trains new runs beside the old ones (nothing is overwritten); the dataset
    # above is resumed, so a second `make demo` renders nothing again.
    stamp = time.strftime("%Y%m%d-%H%M%S")
    vae_overrides: dict[str, object] = {"storage_path": str(storage), "name": f"tiny-vae-{stamp}"}
    if vae_steps is not None:
        vae_overrides["steps"] = vae_steps
    vae = _train_with_progress(console, TINY_VAE, data_dir, vae_overrides)

    console.rule("[bold]3/4 train the tiny world model on the frozen autoencoder's latents")
    world_overrides: dict[str, object] = {"storage_path": str(storage), "name": f"tiny-world-{stamp}",
                                          "vae_checkpoint": str(vae.checkpoint)}
    if world_steps is not None:
        world_overrides["steps"] = world_steps
    world = _train_with_progress(console, TINY_WORLD, data_dir, world_overrides)

    console.rule("[bold]4/4 sample a rollout")
    video = api.sample(world.checkpoint, "first-person walk through a city at noon, moving forward",
                       seconds=seconds, out=out / f"rollout-{stamp}.mp4", actions="w-16,lw-8,w-8")

    table = Table(title=f"worldloom demo finished in {time.monotonic() - started:.0f} s", show_header=False)
    table.add_column("what", no_wrap=True)
    table.add_column("where", overflow="fold")  # paths are printed whole, never cut
    table.add_row("dataset (shards + index.parquet)", str(data_dir))
    table.add_row("autoencoder checkpoint", str(vae.checkpoint))
    table.add_row("world-model checkpoint", str(world.checkpoint))
    table.add_row("sampled rollout", str(video))
    table.add_row("MLflow runs", f"data run, {vae.run_name}, {world.run_name} (linked) in {tracking_uri}")
    console.print(table)
    console.print("every run of this demo (and of earlier demos in this folder), in one MLflow UI:")
    console.print(ui_command(tracking_uri), soft_wrap=True, markup=False, highlight=False)


def _train_with_progress(console: Console, config: Path, data_dir: Path, overrides: dict[str, object]):
    """`api.train` with 2 workers and the CLI's step/loss bar fed by rank 0's heartbeats."""
    from training import api
    from training.cli import train_progress

    resolved = api.resolve_config(config, num_workers=2, overrides=overrides)
    progress, task, update = train_progress(console, resolved.stage, resolved.steps)
    with progress:
        result = api.train(resolved, [str(data_dir)], on_progress=update)
        progress.update(task, completed=result.step)
    console.print(f"  {result.run_name}: {result.step} steps in {result.wall_s:.0f} s, checkpoint {result.checkpoint}")
    return result
