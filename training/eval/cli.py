"""Click commands `worldloom eval CHECKPOINT ...` and `worldloom eval camera VIDEO.mp4` (registered in pipeline/cli.py).

`eval` is a group whose default sub-command is the checkpoint eval, so both
`worldloom eval runs/train/tiny-world --data D --out O` and `worldloom eval camera v.mp4 --fov 70` work.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import numpy as np

from contract.errors import UserError


class _DefaultGroup(click.Group):
    """A group that runs `checkpoint` when the first argument is not a sub-command name."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["checkpoint", *args]
        return super().parse_args(ctx, args)


@click.group("eval", cls=_DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
def eval_group() -> None:
    """Evaluate a world checkpoint (`worldloom eval CHECKPOINT --data DIR --out DIR`) or estimate camera
    motion in a video (`worldloom eval camera VIDEO.mp4 --fov DEG`)."""


@eval_group.command("checkpoint")
@click.argument("checkpoint", type=click.Path())
@click.option("--data", required=True, type=click.Path(), help="held-out dataset folder (worldloom generate output)")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="folder for report.json, plots, videos")
@click.option("--clips", type=int, default=32, show_default=True, help="held-out clips (starts) to evaluate")
@click.option("--seconds", type=float, default=2.0, show_default=True, help="rollout horizon")
@click.option("--steps", type=int, default=8, show_default=True, help="sampler Euler steps per chunk")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--cfg-text", type=float, default=3.0, show_default=True)
@click.option("--cfg-action", type=float, default=1.5, show_default=True)
@click.option("--no-action-response", is_flag=True, help="skip the turn/forward/back rollouts")
@click.option("--no-revisit", is_flag=True, help="skip the full-turn and out-and-back trajectories")
@click.option("--videos", type=int, default=4, show_default=True, help="side-by-side mp4s to write")
@click.option("--no-mlflow", is_flag=True, help="do not log the eval run to MLflow")
@click.option("--threads", type=int, default=None, help="torch intra-op threads (1 is fastest on small shared CPUs)")
def eval_checkpoint(checkpoint: str, data: str, out: str, clips: int, seconds: float, steps: int, seed: int,
                    cfg_text: float, cfg_action: float, no_action_response: bool, no_revisit: bool, videos: int,
                    no_mlflow: bool, threads: int | None) -> None:
    """Roll out CHECKPOINT on held-out clips with true, shuffled and no actions; score fidelity, camera
    following, action response and revisit consistency."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from training.eval import report as report_mod
    from training.eval.run import prepare_eval, run_eval

    if steps < 1:
        raise UserError(f"--steps {steps}: must be at least 1")
    inputs = prepare_eval(checkpoint, data, clips=clips, seconds=seconds)  # user errors before the progress bar
    console = Console(stderr=True, soft_wrap=True)
    with Progress(TextColumn("[bold]eval[/] {task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False) as progress:
        task = progress.add_task("loading", total=None)

        def update(stage: str, done: int, total: int) -> None:
            progress.update(task, description=stage, completed=done, total=total)

        report = run_eval(checkpoint, data, out, clips=clips, seconds=seconds, steps=steps, seed=seed,
                          cfg_text=cfg_text, cfg_action=cfg_action, action_response=not no_action_response,
                          revisit=not no_revisit, videos=videos, mlflow=not no_mlflow, on_progress=update,
                          inputs=inputs, threads=threads)
    console.print(report_mod.summary_table(report))
    for line in report_mod.summary_lines(report):
        console.print(f"  {line}")
    console.print(f"[green]done[/] in {report['wall_s']:.0f} s: report {Path(out) / 'report.json'}, "
                  f"plots {Path(out) / 'plots'}, videos {Path(out) / 'videos'}")
    logged = report.get("mlflow")
    if logged:
        console.print(f"  mlflow      run {logged['run_id']} in {logged['tracking_uri']}"
                      + (f" (child of {logged['parent_run_id']})" if logged.get("parent_run_id") else ""))
        from pipeline.mlflow_store import ui_command

        console.print(f"  mlflow ui   {ui_command(logged['tracking_uri'])}")


# --------------------------------------------------------------------------- eval camera


def load_intrinsics(path: Path) -> np.ndarray:
    """A 3x3 K from JSON (`{"intrinsics": [[...]]}`, `{"fx","fy","cx","cy"}` or a bare 3x3 list) or .npy."""
    if not path.is_file():
        raise UserError(f"--intrinsics {path}: file not found")
    try:
        if path.suffix == ".npy":
            K = np.load(path, allow_pickle=False)
        else:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and {"fx", "fy", "cx", "cy"} <= set(data):
                K = np.array([[data["fx"], 0, data["cx"]], [0, data["fy"], data["cy"]], [0, 0, 1]], dtype=np.float64)
            else:
                K = np.asarray(data.get("intrinsics") if isinstance(data, dict) else data, dtype=np.float64)
    except (ValueError, TypeError, OSError) as error:
        raise UserError(f"--intrinsics {path}: not a 3x3 matrix in JSON or .npy ({str(error)[:120]})",
                        hint='write {"intrinsics": [[fx,0,cx],[0,fy,cy],[0,0,1]]} in pixels of the video') from None
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise UserError(f"--intrinsics {path}: field 'intrinsics' must be a 3x3 matrix with positive fx, fy",
                        hint="K = [[fx,0,cx],[0,fy,cy],[0,0,1]] in pixels of the video")
    return K


def iter_frames(path: Path, max_frames: int) -> Iterator[np.ndarray]:
    """Decoded RGB frames one at a time (bounded memory); UserError when the file is not a video."""
    import av

    if not path.is_file():
        raise UserError(f"VIDEO {path}: file not found")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UserError(f"VIDEO {path}: has no video stream", hint="pass an mp4 (or any ffmpeg-readable video)")
            for index, frame in enumerate(container.decode(video=0)):
                if index >= max_frames:
                    break
                yield frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as error:
        raise UserError(f"VIDEO {path}: not a readable video ({str(error)[:120]})",
                        hint="pass an mp4 (or any ffmpeg-readable video)") from None


@eval_group.command("camera")
@click.argument("video", type=click.Path())
@click.option("--fov", type=float, default=None, help="horizontal field of view in degrees (centred principal point)")
@click.option("--intrinsics", type=click.Path(), default=None, help="JSON or .npy with K in pixels of the video")
@click.option("--max-frames", type=int, default=10_000, show_default=True, help="stop after this many frames")
def eval_camera(video: str, fov: float | None, intrinsics: str | None, max_frames: int) -> None:
    """Print the camera motion between consecutive frames of VIDEO as JSON lines: yaw, pitch, roll (degrees;
    yaw > 0 turns right, pitch > 0 looks up) and the unit translation direction (OpenCV camera axes)."""
    from training.eval import camera as cam

    if (fov is None) == (intrinsics is None):
        raise UserError("eval camera: give exactly one of --fov DEG or --intrinsics FILE")
    if fov is not None and not 1.0 <= fov <= 179.0:
        raise UserError(f"--fov {fov}: must be between 1 and 179 degrees")
    K = load_intrinsics(Path(intrinsics)) if intrinsics is not None else None
    previous = None
    count = 0
    for index, frame in enumerate(iter_frames(Path(video), max_frames)):
        if K is None:
            K = cam.intrinsics_from_fov(frame.shape[1], frame.shape[0], float(fov))
        if previous is not None:
            motion = cam.estimate_pair(previous, frame, K, frame=index)
            click.echo(json.dumps(motion.as_json()))
            count += 1
        previous = frame
    if previous is None:
        raise UserError(f"VIDEO {video}: has no frames")
    if count == 0:
        raise UserError(f"VIDEO {video}: has one frame; camera motion needs at least two")


__all__ = ["eval_group", "eval_camera", "eval_checkpoint"]
