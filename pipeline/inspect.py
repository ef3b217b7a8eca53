"""`worldloom inspect DATASET`: statistics, a contact sheet and GIF previews of a dataset.

Reads only the dataset (index, dataset.json, shards), so it works on anything generate,
curate, select or mix wrote. What it shows is meant to be acted on:

- every score with its unit and p5/p50/p95 over the scored clips, so a `--where` threshold
  can be chosen from the data (`select --where "sharpness > <p50>"` keeps about half);
- a contact sheet whose tiles keep each clip's aspect ratio (portrait clips are letterboxed,
  never stretched) and carry the caption and key;
- previews (sheet and GIFs) chosen across the range of one score (`--by`, default sharpness),
  lowest to highest, rather than the first keys of the first shard.

Every key becomes a file name only through `pipeline.shards.keys.key_path`; a damaged shard is
one red line naming it; a clip whose video cannot be decoded is skipped with a warning.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np

from contract.errors import UserError
from contract.sample import JSON, MP4

PREFERRED_PREVIEW_SCORES = ("sharpness", "motion", "pixel_motion")


# -- choosing clips -----------------------------------------------------------------------------

def preview_keys(dataset: Path, count: int, *, by: str | None = None) -> tuple[list[str], str | None]:
    """`count` kept keys spread evenly over the range of score `by` (lowest first), and the score used.

    Without an index or any score: the first `count` keys in key order.
    """
    from pipeline.shards import DatasetLayout, read_index

    layout = DatasetLayout(Path(dataset))
    if count <= 0 or not layout.index_path.exists():
        return [], None
    index = read_index(layout.index_path)
    kept = index[index["status"] == "kept"].sort_values("key")
    if kept.empty:
        return [], None
    scores = [name for name in sorted({n for names in kept["score_names"] for n in names}) if name in kept]
    if by is not None and by not in scores:
        raise UserError(f"--by {by}: not a score of {dataset}", hint=f"use one of {scores}" if scores else "the dataset has no scores")
    chosen = by or next((name for name in PREFERRED_PREVIEW_SCORES if name in scores), scores[0] if scores else None)
    if chosen is None:
        return list(kept["key"][:count]), None
    ordered = kept.assign(_score=kept[chosen].fillna(-np.inf)).sort_values(["_score", "key"], kind="stable")
    keys = list(ordered["key"])
    if len(keys) <= count:
        return keys, chosen
    positions = np.unique(np.linspace(0, len(keys) - 1, count).round().astype(int))
    return [keys[i] for i in positions], chosen


def _decoded(dataset: Path, keys: list[str], *, max_frames: int | None = None) -> list[dict[str, Any]]:
    """Samples for `keys` (in the order given) with decoded frames; undecodable clips are skipped with a warning."""
    from pipeline.encode import decode_mp4
    from pipeline.shards import iter_samples

    found: dict[str, dict[str, Any]] = {}
    for sample in iter_samples(dataset, decode=False, keys=set(keys)):
        if MP4 not in sample:
            continue
        try:
            frames = decode_mp4(sample[MP4], max_frames=max_frames) if max_frames else decode_mp4(sample[MP4])
        except Exception as error:  # a damaged member is reported, not fatal
            click.secho(f"warning: {sample['__key__']} in {sample['__shard__']}: video not decodable "
                        f"({type(error).__name__}: {error}); skipped (run `worldloom verify`)", fg="yellow", err=True)
            continue
        meta: dict[str, Any] = {}
        if JSON in sample:
            try:
                meta = json.loads(sample[JSON])
            except ValueError:
                meta = {}
        found[sample["__key__"]] = {"key": sample["__key__"], "frames": frames, "meta": meta}
    return [found[key] for key in keys if key in found]


# -- the contact sheet ----------------------------------------------------------------------------

def _fit(width: int, height: int, box_width: int, box_height: int) -> tuple[int, int]:
    """The largest (w, h) with the source's aspect ratio that fits the box."""
    scale = min(box_width / width, box_height / height)
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


def contact_sheet(tiles: list[tuple[str, np.ndarray]], *, tile_width: int = 192, tile_height: int = 144,
                  columns: int = 4, captions: list[str] | None = None):
    """A grid of (label, frame) tiles; each frame keeps its aspect ratio inside a fixed box (letterboxed).

    Under each tile: the caption (one line, shortened) and the key.
    """
    from PIL import Image, ImageDraw

    if not tiles:
        raise ValueError("no frames for a contact sheet")
    columns = min(columns, len(tiles))
    rows = (len(tiles) + columns - 1) // columns
    label_h = 28
    gap = 4
    cell_w, cell_h = tile_width + gap, tile_height + label_h + gap
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    chars = max(8, tile_width // 6)
    for i, (label, frame) in enumerate(tiles):
        x, y = (i % columns) * cell_w, (i // columns) * cell_h
        width, height = _fit(frame.shape[1], frame.shape[0], tile_width, tile_height)
        image = Image.fromarray(frame).resize((width, height), Image.BILINEAR)
        sheet.paste(image, (x + (tile_width - width) // 2, y + (tile_height - height) // 2))
        caption = (captions[i] if captions and i < len(captions) else "") or ""
        caption = caption if len(caption) <= chars else caption[: chars - 1] + "…"
        key = label if len(label) <= chars else "…" + label[-(chars - 1):]
        draw.text((x + 2, y + tile_height + 1), caption, fill=(230, 230, 230))
        draw.text((x + 2, y + tile_height + 14), key, fill=(150, 150, 150))
    return sheet


def write_contact_sheet(dataset: Path, path: Path, *, max_clips: int = 16, by: str | None = None) -> Path:
    keys, _ = preview_keys(Path(dataset), max_clips, by=by)
    samples = _decoded(Path(dataset), keys)
    tiles = [(s["key"], s["frames"][len(s["frames"]) // 2]) for s in samples]
    captions = [str(s["meta"].get("caption", "")) for s in samples]
    sheet = contact_sheet(tiles, captions=captions)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    sheet.save(tmp, format="PNG")
    tmp.replace(path)
    return path


def write_gif_previews(dataset: Path, out_dir: Path, *, count: int = 3, max_frames: int = 32,
                       by: str | None = None) -> list[Path]:
    from PIL import Image

    from pipeline.shards import key_path

    out_dir.mkdir(parents=True, exist_ok=True)
    keys, _ = preview_keys(Path(dataset), count, by=by)
    written: list[Path] = []
    for sample in _decoded(Path(dataset), keys, max_frames=max_frames):
        fps = float(sample["meta"].get("fps", 8.0) or 8.0)
        images = [Image.fromarray(frame) for frame in sample["frames"]]
        path = key_path(out_dir, sample["key"], ".gif", where=str(dataset))
        tmp = path.with_name(path.name + ".tmp")
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        tmp.replace(path)
        written.append(path)
    return written


# -- statistics -----------------------------------------------------------------------------------

def dataset_statistics(dataset: Path) -> dict[str, Any]:
    from pipeline.quality import score_info
    from pipeline.shards import DatasetLayout, read_index

    layout = DatasetLayout(dataset)
    if not layout.index_path.exists():
        raise UserError(f"{dataset}: no index.parquet", hint="point inspect at a dataset written by generate or curate "
                        "(an interrupted run has none until it is resumed)")
    try:
        index = read_index(layout.index_path)
    except Exception as error:  # a damaged index is one line
        raise UserError(f"{layout.index_path}: unreadable ({type(error).__name__})",
                        hint="run `worldloom verify`; re-run the command that wrote the dataset") from None
    reasons: dict[str, int] = {}
    for value in index.loc[index["status"] == "rejected", "reason"]:
        for reason in filter(None, str(value).split(",")):
            reasons[reason] = reasons.get(reason, 0) + 1
    score_columns = sorted({name for names in index["score_names"] for name in names})
    scores = {}
    for name in score_columns:
        if name not in index:
            continue
        column = index[name].dropna()
        if len(column):
            p5, p50, p95 = (float(v) for v in np.percentile(column.to_numpy(dtype=float), [5, 50, 95]))
            info = score_info(name)
            scores[name] = {"min": float(column.min()), "p5": p5, "p50": p50, "median": p50, "p95": p95,
                            "max": float(column.max()), "count": int(len(column)), "unit": info["unit"],
                            "range": info["range"]}
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
@click.option("--by", "by", default=None, help="score to spread the previews over (default: sharpness)")
def inspect_command(dataset: Path, out_dir: Path | None, gifs: int, by: str | None) -> None:
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
        scores = Table(title="scores (all scored clips): choose a --where threshold from p5/p50/p95")
        scores.add_column("score", no_wrap=True)
        for column in ("p5", "p50", "p95"):
            scores.add_column(column, no_wrap=True, justify="right")
        scores.add_column("unit", overflow="fold")
        for name, summary in stats["scores"].items():
            scores.add_row(name, *(f"{summary[k]:.4g}" for k in ("p5", "p50", "p95")), str(summary["unit"]))
        console.print(scores)
    out_dir = out_dir or dataset / "inspect"
    if stats["status"].get("kept", 0):
        sheet = write_contact_sheet(dataset, out_dir / "contact_sheet.png", by=by)
        previews = write_gif_previews(dataset, out_dir / "previews", count=gifs, by=by)
        console.print(f"contact sheet: {sheet}")
        for preview in previews:
            console.print(f"preview: {preview}")
    else:
        console.print("[yellow]no kept clips: no contact sheet or previews written")
