"""`worldloom inspect DATASET`: statistics, a contact sheet and GIF previews of a dataset.

Reads only the dataset (index, dataset.json, shards), so it works on anything generate,
curate, select or mix wrote.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np

from pipeline.errors import UserError


def _middle_frames(dataset: Path, max_clips: int) -> list[tuple[str, np.ndarray]]:
    from pipeline.encode import decode_mp4
    from pipeline.shards import iter_samples

    picked: list[tuple[str, np.ndarray]] = []
    for sample in iter_samples(dataset, decode=False):
        if "mp4" not in sample:
            continue
        frames = decode_mp4(sample["mp4"])
        picked.append((sample["__key__"], frames[len(frames) // 2]))
        if len(picked) >= max_clips:
            break
    return picked


def contact_sheet(tiles: list[tuple[str, np.ndarray]], *, tile_width: int = 192, columns: int = 4):
    """A grid image of (label, frame) tiles, label under each tile."""
    from PIL import Image, ImageDraw

    if not tiles:
        raise ValueError("no frames for a contact sheet")
    columns = min(columns, len(tiles))
    rows = (len(tiles) + columns - 1) // columns
    height = max(int(round(frame.shape[0] * tile_width / frame.shape[1])) for _, frame in tiles)
    label_h = 14
    sheet = Image.new("RGB", (columns * tile_width, rows * (height + label_h)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for i, (label, frame) in enumerate(tiles):
        x, y = (i % columns) * tile_width, (i // columns) * (height + label_h)
        image = Image.fromarray(frame).resize((tile_width, height))
        sheet.paste(image, (x, y))
        draw.text((x + 2, y + height + 1), label[-28:], fill=(230, 230, 230))
    return sheet


def write_contact_sheet(dataset: Path, path: Path, *, max_clips: int = 16) -> Path:
    sheet = contact_sheet(_middle_frames(Path(dataset), max_clips))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    sheet.save(tmp, format="PNG")
    tmp.replace(path)
    return path


def write_gif_previews(dataset: Path, out_dir: Path, *, count: int = 3, max_frames: int = 32) -> list[Path]:
    from PIL import Image

    from pipeline.encode import decode_mp4
    from pipeline.shards import iter_samples

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for sample in iter_samples(dataset, decode=False):
        if len(written) >= count:
            break
        if "mp4" not in sample:
            continue
        frames = decode_mp4(sample["mp4"], max_frames=max_frames)
        fps = 8.0
        if "json" in sample:
            import json

            fps = float(json.loads(sample["json"]).get("fps", fps))
        images = [Image.fromarray(frame) for frame in frames]
        path = out_dir / f"{sample['__key__']}.gif"
        tmp = path.with_name(path.name + ".tmp")
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        tmp.replace(path)
        written.append(path)
    return written


def dataset_statistics(dataset: Path) -> dict[str, Any]:
    from pipeline.shards import DatasetLayout, read_index

    layout = DatasetLayout(dataset)
    if not layout.index_path.exists():
        raise UserError(f"{dataset}: no index.parquet", hint="point inspect at a dataset written by generate or curate "
                        "(an interrupted run has none until it is resumed)")
    index = read_index(layout.index_path)
    reasons: dict[str, int] = {}
    for value in index.loc[index["status"] == "rejected", "reason"]:
        for reason in filter(None, str(value).split(",")):
            reasons[reason] = reasons.get(reason, 0) + 1
    score_columns = sorted({name for names in index["score_names"] for name in names})
    scores = {}
    for name in score_columns:
        column = index[name].dropna()
        if len(column):
            scores[name] = {"min": float(column.min()), "median": float(column.median()), "max": float(column.max())}
    kept = index[index["status"] == "kept"]
    shards = layout.complete_shards()
    return {
        "clips": int(len(index)),
        "status": {k: int(v) for k, v in index["status"].value_counts().items()},
        "rejects_by_reason": reasons,
        "kept_frames": int(kept["frames"].sum()),
        "kept_seconds": float((kept["frames"] / kept["fps"].where(kept["fps"] > 0, 1)).sum()),
        "resolutions": {f"{w}x{h}": int(n) for (w, h), n in kept.groupby(["width", "height"]).size().items()},
        "shards": len(shards),
        "shard_bytes": int(sum(p.stat().st_size for p in shards)),
        "scores": scores,
    }


@click.command("inspect")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None, help="default: DATASET/inspect")
@click.option("--gifs", type=int, default=3, show_default=True, help="number of GIF previews")
def inspect_command(dataset: Path, out_dir: Path | None, gifs: int) -> None:
    """Print statistics of DATASET and write a contact sheet PNG and GIF previews."""
    from rich.console import Console
    from rich.table import Table

    if not dataset.is_dir():
        raise UserError(f"{dataset}: not a directory", hint="pass the --out directory of generate or curate")
    stats = dataset_statistics(dataset)
    console = Console()
    table = Table(title=f"dataset {dataset}", show_header=False)
    for name in ("clips", "status", "rejects_by_reason", "kept_frames", "kept_seconds", "resolutions", "shards", "shard_bytes"):
        value = stats[name]
        table.add_row(name, f"{value:.1f}" if isinstance(value, float) else str(value))
    console.print(table)
    if stats["scores"]:
        scores = Table(title="scores (all scored clips)")
        for column in ("score", "min", "median", "max"):
            scores.add_column(column)
        for name, summary in stats["scores"].items():
            scores.add_row(name, *(f"{summary[k]:.4g}" for k in ("min", "median", "max")))
        console.print(scores)
    out_dir = out_dir or dataset / "inspect"
    if stats["status"].get("kept", 0):
        sheet = write_contact_sheet(dataset, out_dir / "contact_sheet.png")
        previews = write_gif_previews(dataset, out_dir / "previews", count=gifs)
        console.print(f"contact sheet: {sheet}")
        for preview in previews:
            console.print(f"preview: {preview}")
    else:
        console.print("[yellow]no kept clips: no contact sheet or previews written")
