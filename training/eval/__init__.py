"""`worldloom eval`: does a trained world model follow its actions and camera? (docs/eval.md)

    camera.py       camera motion estimated from video alone (tracks + rotation / epipolar fits)
    metrics.py      PSNR, SSIM, camera-following errors, per-second curves
    groundtruth.py  held-out clips from shards; any action sequence rendered by the procedural backend
    rollout.py      model loading, clip preparation at the model's fps and size, rollouts, commands
    run.py          `run_eval`: rollouts, controls, action response, revisit, summary
    report.py       report.json, terminal table, PNG plots, side-by-side mp4s
    tracking.py     the eval's MLflow run, linked to the checkpoint's training run
    cli.py          `worldloom eval CHECKPOINT ...` and `worldloom eval camera VIDEO.mp4`
"""
from __future__ import annotations

from typing import Any


def run_eval(checkpoint, data, out, **kwargs: Any) -> dict[str, Any]:
    """See training.eval.run.run_eval (imported lazily: it pulls in torch and OpenCV)."""
    from training.eval.run import run_eval as _run_eval

    return _run_eval(checkpoint, data, out, **kwargs)


__all__ = ["run_eval"]
