"""Click commands `worldloom train`, `worldloom encode`, `worldloom sample` (registered in pipeline/cli.py)."""
from __future__ import annotations

import click

from contract.errors import UserError


def _console():
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def train_progress(console, stage: str, total: int):
    """`train vae ━━━━━━━━━━━━━━━━━━━━ 40/150 loss 0.0123 0:00:12 eta 0:01:10` (fits 80 columns).

    Returns the Progress, its task and `update(heartbeat)`, fed by rank 0's heartbeat file."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(TextColumn(f"[bold]train {stage}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TextColumn("eta"),
                        TimeRemainingColumn(), console=console, transient=False)
    task = progress.add_task("train", total=total, loss="-")

    def update(heartbeat: dict) -> None:
        loss = heartbeat.get("loss")
        fields = {"loss": f"{loss:.4f}"} if isinstance(loss, (int, float)) else {}
        progress.update(task, completed=max(0, int(heartbeat.get("step", 0))), **fields)

    return progress, task, update


@click.command("train")
@click.argument("config")
@click.option("--data", "data", multiple=True, required=True, metavar="SHARDS",
              help="dataset folder, .tar or pattern; repeat to mix sources, PATH:WEIGHT sets a mixture weight")
@click.option("--ray-address", default=None, help="Ray cluster to join (default: $RAY_ADDRESS or a local instance)")
@click.option("--num-workers", type=int, default=None, help="training workers (overrides scaling.num_workers)")
@click.option("--gpus-per-worker", type=float, default=None, help="GPUs per worker (overrides scaling.gpus_per_worker)")
@click.option("--resume", is_flag=True, help="continue the run with this config's name from its last checkpoint")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="dotted config override, e.g. --set steps=20 --set optim.lr=1e-4 (repeatable; values are YAML)")
def train(config: str, data: tuple[str, ...], ray_address: str | None, num_workers: int | None,
          gpus_per_worker: float | None, resume: bool, sets: tuple[str, ...]) -> None:
    """Train the VAE or the world model on Ray Train (stage and sizes come from CONFIG).

    CONFIG is a YAML file or a packaged config name (tiny_vae, tiny_world, ...; see
    `worldloom config show train NAME`)."""
    from pipeline.mlflow_store import ui_command
    from training import api
    from training.config import parse_data_arg, parse_set_options, with_overrides
    from training.trainer import preflight

    resolved = api.resolve_config(config, num_workers=num_workers, gpus_per_worker=gpus_per_worker)
    resolved = with_overrides(resolved, "--set", **parse_set_options(sets))
    preflight(resolved, [parse_data_arg(d) for d in data], resume=resume)  # user errors before any progress bar
    console = _console()
    progress, task, update = train_progress(console, resolved.stage, resolved.steps)
    with progress:
        result = api.train(resolved, list(data), ray_address=ray_address, resume=resume, on_progress=update)
        progress.update(task, completed=result.step)
    store = result.tracking_uri
    console.print(f"[green]done[/]: run {result.run_name}, {result.step} steps in {result.wall_s:.0f} s")
    console.print(f"  checkpoint  {result.checkpoint}")
    console.print(f"  mlflow      run {result.mlflow_run_id} in {store}")
    console.print(f"  mlflow ui   {ui_command(store)}")
    console.print(f"  metrics     {', '.join(f'{k}={v:.4g}' for k, v in result.metrics.items() if isinstance(v, float))}")


@click.command("encode")
@click.argument("checkpoint", type=click.Path())
@click.option("--data", "data", multiple=True, required=True, metavar="SHARDS", help="dataset folder, .tar or pattern")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="output dataset folder for latent shards")
@click.option("--windows-per-clip", type=int, default=4, show_default=True)
def encode_latents(checkpoint: str, data: tuple[str, ...], out: str, windows_per_clip: int) -> None:
    """Precompute latents of a trained VAE CHECKPOINT into shards (for `data.latents` of the world stage)."""
    from rich.progress import Progress

    from training import api

    console = _console()
    with Progress(console=console) as progress:
        task = progress.add_task("encode windows", total=None)
        result = api.encode_latents(checkpoint, list(data), out, windows_per_clip=windows_per_clip,
                            on_progress=lambda n: progress.update(task, completed=n))
    console.print(f"[green]done[/]: {result.windows} windows from {result.clips} clips "
                  f"({result.skipped_short} too short) in {result.wall_s:.1f} s "
                  f"({result.windows / max(result.wall_s, 1e-9):.1f} windows/s) -> {result.out}")



@click.command("sample")
@click.argument("checkpoint", type=click.Path())
@click.option("--prompt", required=True, help="text prompt")
@click.option("--image", type=click.Path(dir_okay=False), default=None, help="first frame (image-to-video)")
@click.option("--actions", default=None, help='keyboard actions, e.g. "w-80,a-20" (see docs/manifests.md)')
@click.option("--camera", type=click.Path(dir_okay=False), default=None, help="camera path JSON (camera_to_world per frame)")
@click.option("--seconds", type=float, required=True, help="length of the rollout")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="output .mp4")
@click.option("--steps", type=int, default=8, show_default=True, help="flow-matching steps per chunk")
@click.option("--seed", type=int, default=0, show_default=True)
def sample(checkpoint: str, prompt: str, image: str | None, actions: str | None, camera: str | None,
           seconds: float, out: str, steps: int, seed: int) -> None:
    """Roll out a world-model CHECKPOINT into an mp4."""
    from training.sample import sample_video

    if not out.endswith(".mp4"):
        raise UserError(f"--out {out}: must end in .mp4")
    result = sample_video(checkpoint, prompt, seconds=seconds, out=out, image=image, actions=actions, camera=camera,
                          steps=steps, seed=seed, progress=True)
    console = _console()
    for note in result.notes:
        console.print(f"[yellow]note[/]: {note}")
    console.print(f"[green]done[/]: {result.frames} frames {result.width}x{result.height} at {result.fps:g} fps "
                  f"in {result.wall_s:.1f} s -> {result.out}")


@click.command("export")
@click.argument("checkpoint", type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="export folder: config.json + model.safetensors (+ vae.safetensors for world checkpoints)")
def export(checkpoint: str, out: str) -> None:
    """Export the EMA weights of CHECKPOINT (a checkpoint, run or export folder) as safetensors +
    JSON: what `worldloom sample` and `worldloom eval` load, without the optimizer state."""
    from training.export import export_checkpoint

    result = export_checkpoint(checkpoint, out)
    _console().print(f"[green]done[/]: {result.stage} model {result.model} at step {result.step}, "
                     f"{result.parameters:,} parameters, {result.bytes / 2**20:.1f} MiB in {result.wall_s:.1f} s "
                     f"-> {result.out}")
