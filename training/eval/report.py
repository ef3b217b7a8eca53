"""Eval outputs: `report.json`, the terminal table, PNG plots and side-by-side mp4s.

Layout of `--out DIR`:
    report.json                     every number (NaN/inf written as null/"inf")
    plots/error_vs_horizon.png      PSNR, SSIM and camera rotation error per second, per control
    plots/action_response.png       contact sheet: one row per start: the start frame, then the last
                                    frame of each command's rollout
    videos/<key>.mp4                ground truth | true actions | shuffled | no actions
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

PLOT_CONTROLS = (("true", "true actions"), ("shuffled", "shuffled actions"), ("no_action", "no actions"))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return round(value, 6)
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json(report: dict[str, Any], out: Path) -> Path:
    from training.video_io import write_atomic

    return write_atomic(out / "report.json", (json.dumps(_jsonable(report), indent=1, sort_keys=True) + "\n").encode())


def write_outputs(report: dict[str, Any], out: Path, side_by_side: dict[str, list[np.ndarray]],
                  response_grid: list[list[np.ndarray]], *, fps: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report.setdefault("outputs", {})
    report["outputs"]["plots"] = [str(p.relative_to(out)) for p in write_plots(report, out, response_grid)]
    report["outputs"]["videos"] = [str(p.relative_to(out)) for p in write_videos(out, side_by_side, fps)]
    write_json(report, out)


def write_videos(out: Path, side_by_side: dict[str, list[np.ndarray]], fps: float) -> list[Path]:
    """One mp4 per clip: the videos side by side, through the one H.264 encoder."""
    from pipeline.encode import EncodeSettings, encode_mp4
    from training.video_io import write_atomic

    written = []
    for key, videos in side_by_side.items():
        frames = min(len(v) for v in videos)
        strip = np.concatenate([v[:frames] for v in videos], axis=2)
        if strip.shape[1] % 2 or strip.shape[2] % 2:  # yuv420p needs even sizes
            strip = strip[:, : strip.shape[1] // 2 * 2, : strip.shape[2] // 2 * 2]
        payload = encode_mp4(np.ascontiguousarray(strip), fps, EncodeSettings(crf=18, gop=8))
        written.append(write_atomic(out / "videos" / f"{key}.mp4", payload))
    return written


def write_plots(report: dict[str, Any], out: Path, response_grid: list[list[np.ndarray]]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = ((report["fidelity"], "psnr_db", "PSNR vs ground truth (dB)"),
              (report["fidelity"], "ssim", "SSIM vs ground truth"),
              (report["camera"], "rotation_error_deg", "camera rotation error (deg)"))
    for axis, (block, name, title) in zip(axes, panels, strict=False):
        controls = list(PLOT_CONTROLS) + ([("ground_truth", "estimator on ground truth")] if block is report["camera"] else [])
        for control, label in controls:
            values = [v if v is not None and math.isfinite(v) else np.nan for v in block[control][name]["per_second"]]
            if values:
                axis.plot(range(1, len(values) + 1), values, marker="o", label=label)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("second of horizon")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=8)
    figure.suptitle(f"{Path(report['checkpoint']).name}: {report['clips']} held-out clips", fontsize=10)
    figure.tight_layout()
    horizon = folder / "error_vs_horizon.png"
    figure.savefig(horizon, dpi=100)
    plt.close(figure)
    paths = [horizon]
    if response_grid:
        paths.append(_contact_sheet(response_grid, folder / "action_response.png"))
    return paths


def _contact_sheet(grid: list[list[np.ndarray]], path: Path) -> Path:
    """Rows = starts; columns = the start frame, then the last frame of each command's rollout."""
    from PIL import Image, ImageDraw

    from training.eval.run import COMMANDS

    rows = grid[:16]
    labels = ("start", *COMMANDS)
    height, width = rows[0][0].shape[:2]
    scale = max(1, 96 // max(height, width))
    cell_h, cell_w, header = height * scale, width * scale, 14
    sheet = Image.new("RGB", (cell_w * len(labels), header + cell_h * len(rows)), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    for column, command in enumerate(labels):
        draw.text((column * cell_w + 2, 1), command, fill=(230, 230, 230))
    for row_index, row in enumerate(rows):
        for column, frame in enumerate(row):
            tile = Image.fromarray(frame).resize((cell_w, cell_h), Image.NEAREST)
            sheet.paste(tile, (column * cell_w, header + row_index * cell_h))
    sheet.save(path)
    return path


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def summary_table(report: dict[str, Any]):
    """A rich Table: one row per control, the headline numbers in columns."""
    from rich.table import Table

    table = Table(title=f"worldloom eval: {report['clips']} clips, {report['seconds']} s ({report['frames']} frames "
                        f"at {report['fps']:g} fps, {report['resolution'][0]}x{report['resolution'][1]})")
    for column in ("rollout", "PSNR dB", "SSIM", "rot. err deg", "transl. dir err deg", "CamMC"):
        table.add_column(column, justify="right" if column != "rollout" else "left")
    for control, label in (*PLOT_CONTROLS, ("ground_truth", "ground truth (floor)")):
        fidelity = report["fidelity"].get(control)
        camera = report["camera"][control]
        table.add_row(label,
                      _fmt(fidelity["psnr_db"]["overall"]) if fidelity else "-",
                      _fmt(fidelity["ssim"]["overall"], 3) if fidelity else "-",
                      _fmt(camera["rotation_error_deg"]["overall"]),
                      _fmt(camera["translation_direction_error_deg"]["overall"]),
                      _fmt(camera["cammc"]["overall"], 3))
    return table


def summary_lines(report: dict[str, Any]) -> list[str]:
    lines = [f"yaw-sign agreement {_fmt(report['yaw_sign_agreement'])}, "
             f"expansion agreement {_fmt(report['expansion_agreement'])} "
             f"({report.get('action_response', {}).get('starts', 0)} starts)",
             f"PSNR first {min(report['options']['fidelity_window_s'], report['seconds']):g} s: true - shuffled = "
             f"{_fmt(report['psnr_true_vs_shuffled_db'])} dB"]
    for kind, values in (report.get("revisit") or {}).items():
        if values.get("trajectories"):
            lines.append(f"revisit {kind}: PSNR at return, ground truth {_fmt(values.get('ground_truth_psnr_db'))} dB, "
                         f"rollout {_fmt(values.get('rollout_psnr_db'))} dB")
    return lines
