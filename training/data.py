"""The shard loader: per-worker WebDataset readers -> clip windows aligned with poses and actions.

Why per-worker readers and not Ray Data: each training worker streams only its own shards
(split by node, then by DataLoader worker), decodes only the window it needs from the mp4
bytes, and can resume at the exact sample it stopped at; Ray Data would ship whole multi-MB
clips through the object store and loses its in-epoch position on restart
(see docs/training.md, "Data").

Pipeline for one (rank, loader worker), per source:

    shards ─shuffle per epoch─▶ split by node ─▶ split by worker ─▶ tar samples ─▶ shuffle buffer
                                                                                     │
    sources mixed by weight (seeded) ◀───────────────────────────────────────────────┘
        ─▶ skip (resume; no decode) ─▶ decode the window (decord) ─▶ align poses/actions/caption

Every random draw is seeded from (seed, source, epoch, rank, worker), so the stream is a pure
function of the config and its position: resuming = rebuilding the stream and skipping the
samples already consumed, before any decoding.

When a source has fewer shards than (world size x loader workers), shard-level splitting
would starve some readers; those sources are split sample by sample instead (every reader
reads every tar but keeps only its own samples), which is right for tiny datasets.

Integrity and liveness (docs/training.md, "Data"):
- local tars are read with `pipeline.shards.read_tar_samples` (keys checked, a truncated or
  foreign tar raises `DamagedShard` naming it) and, when the dataset has an index, every
  sample's members are checked against its `member_sha256`. `data.on_damaged` chooses: `skip`
  (default: a warning naming the shard, the samples counted in `data_skipped_samples`) or
  `stop` (one line naming it).
- `window_preflight` (run by the trainer before any worker starts) counts the clips long
  enough for the window, in total and per rank, from the index; a rank with none is refused.
- the watchdog: a reader that goes a whole pass over its shards of every source without a
  usable window stops with one line naming the cause, instead of skipping forever while the
  other ranks wait in DDP.

Modules, one job each (this module is their index: it re-exports what other code imports):

    data_discovery.py   shard lists of a --data source, the index beside them, lineage (provenance)
    data_decode.py      the mp4 (decord) and .npy members of a sample
    data_crops.py       the centred crop + resize of frames, and the intrinsics that follow them
    data_windows.py     which frames a window takes (plan_window), and poses/actions/K aligned to them
    data_readers.py     one reader's share of the tars per epoch, read checked, shuffled
    data_stream.py      readers mixed into windows and batches for one rank; resumable (make_loader)
    data_preflight.py   clips that fit the window, per rank, before any worker starts
    data_errors.py      DataDamaged, DataStarved

(Flat files, not a `training/data/` package: the repository's .gitignore ignores every `data/`
folder, where datasets go.)
"""
from __future__ import annotations

from training.data_crops import crop_box, crop_resize_intrinsics, resize_frames
from training.data_decode import OpenVideo, parse_npy
from training.data_discovery import provenance, resolve_shards
from training.data_errors import DataDamaged, DataStarved
from training.data_preflight import DataPreflight, window_preflight
from training.data_readers import DamageLog, reader_shards
from training.data_stream import ClipWindows, DataPosition, LoaderHandle, collate, make_loader
from training.data_windows import (
    WindowPlan,
    WindowSpec,
    align_actions,
    clip_window,
    latent_window,
    plan_window,
    window_fits,
    window_indices,
)

__all__ = [
    "ClipWindows", "DamageLog", "DataDamaged", "DataPosition", "DataPreflight", "DataStarved", "LoaderHandle",
    "OpenVideo", "WindowPlan", "WindowSpec", "align_actions", "clip_window", "collate", "crop_box",
    "crop_resize_intrinsics", "latent_window", "make_loader", "parse_npy", "plan_window", "provenance",
    "reader_shards", "resize_frames", "resolve_shards", "window_fits", "window_indices", "window_preflight",
]
