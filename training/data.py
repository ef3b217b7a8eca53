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
"""
from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import random
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds

from contract.defaults import unknown_camera_intrinsics
from contract.errors import UserError
from contract.sample import ACTION_DIM, ACTIONS, INTRINSICS, JSON, KEY_CHANNELS, LATENTS, LOOK_CHANNELS, MP4, POSES

# Legend: T frames in a window, H x W output resolution, A = 8 action channels.


# --------------------------------------------------------------------------- shard lists


def resolve_shards(path: str) -> list[str]:
    """A dataset folder (shards/*.tar), a folder of tars, a tar, a glob or a brace pattern -> sorted URLs."""
    if "://" in path and not path.startswith("file://"):
        return sorted(wds.shardlists.expand_urls(path))
    local = path.removeprefix("file://")
    candidate = Path(local)
    if candidate.is_dir():
        tars = sorted(str(p) for p in (candidate / "shards").glob("*.tar")) or sorted(
            str(p) for p in candidate.glob("*.tar")
        )
        if not tars:
            raise UserError(f"--data {path}: no .tar shards in the folder or its shards/ subfolder",
                            hint="point --data at a dataset written by `worldloom generate`")
        return tars
    if candidate.is_file():
        return [str(candidate)]
    expanded = [u for pattern in wds.shardlists.expand_urls(local) for u in sorted(glob.glob(pattern))]
    if not expanded:
        raise UserError(f"--data {path}: no such file, folder or matching shards",
                        hint="pass a dataset folder, a .tar, or a pattern like data/shards/{000000..000009}.tar")
    return sorted(expanded)


def provenance(sources: list[tuple[str, float]]) -> dict[str, Any]:
    """Shard list and a content hash per source, for MLflow lineage.

    The hash is the sha256 of the dataset's index.parquet when there is one (it names every clip
    and its sha256), else of the shard names and sizes.
    """
    out = []
    for path, weight in sources:
        shards = resolve_shards(path)
        index = _index_file(path)
        digest = hashlib.sha256()
        if index is not None:
            digest.update(index.read_bytes())
        else:
            for url in shards:
                size = os.path.getsize(url) if os.path.exists(url) else -1
                digest.update(f"{os.path.basename(url)}:{size}\n".encode())
        out.append({"path": path, "weight": weight, "shards": shards,
                    "index": str(index) if index else None, "index_sha256": digest.hexdigest()})
    return {"sources": out}


def _index_file(path: str) -> Path | None:
    candidate = Path(path.removeprefix("file://"))
    for name in ("index.parquet",):
        for folder in (candidate, candidate.parent, candidate.parent.parent):
            if folder.is_dir() and (folder / name).is_file():
                return folder / name
    return None


# --------------------------------------------------------------------------- decoding


class OpenVideo:
    """The one place that decodes video (decord); swap this class for torchcodec where decord is missing.

    Opening demuxes the container to index its frames (no pixel decoding), so `len()` is the
    number of frames actually present, not the container's declared count. `read` decodes only
    the requested frames (seeking to the nearest keyframe). Frames are decoded at the stored
    size and resized by `resize_frames`: decord's built-in scaler returns wrongly sized buffers
    for some widths (checked here: 16, 24, 48 fail; 20, 32, 64 work).
    """

    def __init__(self, mp4: bytes) -> None:
        import decord

        self._reader = decord.VideoReader(io.BytesIO(mp4), ctx=decord.cpu(0), num_threads=1)

    def __len__(self) -> int:
        return len(self._reader)

    @property
    def fps(self) -> float:
        return float(self._reader.get_avg_fps())

    def read(self, indices: list[int]) -> np.ndarray:
        """(T, H_src, W_src, 3) uint8."""
        return self._reader.get_batch(indices).asnumpy()


def crop_box(source_height: int, source_width: int, height: int, width: int) -> tuple[int, int, int, int]:
    """(top, left, crop_height, crop_width): the centred crop of the source with the target aspect."""
    if source_width * height > width * source_height:  # source is wider: crop the sides
        crop_width, crop_height = round(source_height * width / height), source_height
    else:
        crop_width, crop_height = source_width, round(source_width * height / width)
    return (source_height - crop_height) // 2, (source_width - crop_width) // 2, crop_height, crop_width


def resize_frames(frames_THW3: np.ndarray, height: int, width: int) -> torch.Tensor:
    """Centre-crop to the target aspect ratio, then area/bilinear resize -> (T, height, width, 3) uint8."""
    video = torch.from_numpy(frames_THW3)
    source_height, source_width = video.shape[1:3]
    if (source_height, source_width) == (height, width):
        return video
    top, left, crop_height, crop_width = crop_box(source_height, source_width, height, width)
    video = video[:, top: top + crop_height, left: left + crop_width].permute(0, 3, 1, 2).float()
    video = torch.nn.functional.interpolate(video, size=(height, width), mode="bilinear", antialias=True,
                                            align_corners=False)
    return video.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def plan_window(num_source_frames: int, source_fps: float, frames: int, fps: float,
                rng: random.Random) -> tuple[list[int], int]:
    """Source frame indices for a window of `frames` at `fps` and the stride between them.

    The stride is the integer nearest source_fps / fps (at least 1); the start is random.
    Returns ([], stride) when the clip is too short.
    """
    stride = max(1, round(source_fps / fps))
    span = (frames - 1) * stride + 1
    if span > num_source_frames:
        return [], stride
    start = rng.randint(0, num_source_frames - span)
    return [start + k * stride for k in range(frames)], stride


def align_actions(actions_TA: np.ndarray, indices: list[int], stride: int) -> np.ndarray:
    """Actions for the subsampled frames: frame k covers source frames (i_k - stride, i_k].

    Key channels are multi-hot, so a key counts as pressed if it was pressed on any covered frame;
    look channels are per-frame deltas, so they add up.
    """
    out = np.zeros((len(indices), actions_TA.shape[1]), dtype=np.float32)
    for k, index in enumerate(indices):
        covered = actions_TA[max(0, index - stride + 1): index + 1]
        out[k, KEY_CHANNELS] = covered[:, KEY_CHANNELS].max(axis=0)
        out[k, LOOK_CHANNELS] = covered[:, LOOK_CHANNELS].sum(axis=0)
    return out


_NPY_HEADER = re.compile(rb"\{'descr': '([<>|=][a-z]\d+)', 'fortran_order': False, 'shape': \(([\d, ]*)\), \}")


def _npy(value: bytes | None) -> np.ndarray | None:
    """Parse an .npy member. Fast path for the plain C-order headers our writers produce
    (np.load parses every header with ast.literal_eval, a measurable cost per sample)."""
    if value is None:
        return None
    if value[:6] == b"\x93NUMPY" and value[6] == 1:
        header_length = int.from_bytes(value[8:10], "little")
        match = _NPY_HEADER.match(value[10:10 + header_length])
        if match:
            shape = tuple(int(n) for n in match.group(2).split(b",") if n.strip())
            return np.frombuffer(value, dtype=np.dtype(match.group(1).decode()), offset=10 + header_length
                                 ).reshape(shape)
    return np.load(io.BytesIO(value), allow_pickle=False)


@dataclass
class WindowPlan:
    video: OpenVideo
    meta: dict[str, Any]
    indices: list[int]
    stride: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # parsed .npy members, reused by clip_window


def plan_clip(sample: dict[str, Any], spec: "WindowSpec", rng: random.Random) -> WindowPlan | None:
    """Open the clip and choose its window; None when the clip is shorter than a window.

    Used both when training and when skipping on resume, so both make the same draws.
    """
    meta = json.loads(sample[JSON]) if JSON in sample else {}
    video = OpenVideo(sample[MP4])
    num_frames = len(video)
    arrays = {name: _npy(sample[name]) for name in (POSES, ACTIONS, INTRINSICS) if name in sample}
    for name in (POSES, ACTIONS):
        if name in arrays:
            num_frames = min(num_frames, len(arrays[name]))
    source_fps = float(meta.get("fps") or video.fps)
    indices, stride = plan_window(num_frames, source_fps, spec.frames, spec.fps, rng)
    return WindowPlan(video, meta, indices, stride, arrays) if indices else None


def clip_window(sample: dict[str, Any], plan: WindowPlan, spec: "WindowSpec") -> dict[str, Any]:
    """Decode the planned window of one raw shard sample, with poses, actions and caption aligned to it."""
    indices, meta = plan.indices, plan.meta
    poses = plan.arrays.get(POSES)
    actions = plan.arrays.get(ACTIONS)
    intrinsics = plan.arrays.get(INTRINSICS)
    frames = plan.video.read(indices)
    source_height, source_width = frames.shape[1:3]
    video = resize_frames(frames, spec.height, spec.width)
    if intrinsics is not None and intrinsics.ndim == 3:  # per-frame intrinsics
        intrinsics = intrinsics[indices[0]]
    scaled_K = _crop_resize_intrinsics(intrinsics, source_height, source_width, spec.height, spec.width)
    return {
        "key": sample["__key__"],
        "video": video,                                                     # (T, H, W, 3) uint8
        "poses": torch.from_numpy(
            (poses[indices] if poses is not None else np.broadcast_to(np.eye(4), (spec.frames, 4, 4))).astype(np.float32)
        ),                                                                   # (T, 4, 4) camera-to-world
        "actions": torch.from_numpy(
            align_actions(actions, indices, plan.stride) if actions is not None
            else np.zeros((spec.frames, ACTION_DIM), np.float32)
        ),                                                                   # (T, A)
        "has_actions": torch.tensor(actions is not None),
        "intrinsics": torch.from_numpy(scaled_K.astype(np.float32)),         # (3, 3) at H x W
        "caption": str(meta.get("caption", "")),
        "window_start": indices[0],
    }


def _crop_resize_intrinsics(K: np.ndarray | None, source_height: int, source_width: int,
                            height: int, width: int) -> np.ndarray:
    """K of the source pixels -> K of the cropped and resized pixels (pinhole, OpenCV)."""
    if K is None:  # unknown camera: a 90-degree horizontal field of view, centred
        return unknown_camera_intrinsics(width, height)
    top, left, crop_height, crop_width = crop_box(source_height, source_width, height, width)
    shift = np.array([[1, 0, -left], [0, 1, -top], [0, 0, 1]], dtype=np.float64)
    scale = np.diag([width / crop_width, height / crop_height, 1.0])
    return scale @ shift @ np.asarray(K, dtype=np.float64)


# --------------------------------------------------------------------------- streams


@dataclass
class WindowSpec:
    frames: int
    fps: float
    height: int
    width: int


@dataclass
class DataPosition:
    """How far a rank has read: batches consumed (all ranks advance in lockstep).

    Restoring needs the same batch size, loader workers and world size; otherwise the stream
    restarts at a fresh epoch derived from `batches` (order differs, no sample is lost forever).
    """

    batches: int = 0
    batch_size: int = 0
    loader_workers: int = 0
    world_size: int = 1

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, int] | None) -> "DataPosition":
        return cls(**data) if data else cls()


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "little")


def _rebuild(cls: type, message: str, hint: str | None) -> UserError:
    return cls(message, hint=hint)


class DataDamaged(UserError):
    """`data.on_damaged: stop` and a shard or sample that is not what its dataset recorded."""

    exit_code = 1

    def __reduce__(self):  # picklable across DataLoader and Ray worker processes (plain strings only)
        return (_rebuild, (type(self), self.message, self.hint))


class DataStarved(UserError):
    """A reader went a whole pass over its shards without one clip long enough for a window."""

    exit_code = 1

    def __reduce__(self):
        return (_rebuild, (type(self), self.message, self.hint))


@dataclass
class DamageLog:
    """What this reader skipped: samples, and the shards reported (each warned about once)."""

    policy: str = "skip"                     # skip | stop
    samples: int = 0
    shards: set[str] = field(default_factory=set)

    def damaged(self, where: str, reason: str, samples: int) -> None:
        message = f"{where}: {reason}"
        if self.policy == "stop":
            raise DataDamaged(f"{message}; stopping (data.on_damaged: stop)",
                              hint="run `worldloom verify` on the dataset; re-run generate to re-make damaged shards, "
                                   "or set data.on_damaged: skip")
        self.samples += samples
        if where not in self.shards:
            self.shards.add(where)
            print(f"warning: skipped damaged data: {message} ({samples} sample(s)); "
                  "run `worldloom verify` on the dataset", file=sys.stderr, flush=True)


_DIGESTS: dict[str, dict[str, tuple[str, str]]] = {}   # index path -> key -> (shard, member_sha256), per process


def _index_digests(url: str) -> dict[str, tuple[str, str]]:
    """key -> (shard name, member_sha256 JSON) of kept rows of the index beside `url`; {} without an index."""
    index = _index_file(url)
    if index is None:
        return {}
    cached = _DIGESTS.get(str(index))
    if cached is None:
        import pyarrow.parquet as pq

        try:
            columns = pq.read_schema(index).names
            wanted = [c for c in ("key", "status", "shard", "member_sha256") if c in columns]
            table = pq.read_table(index, columns=wanted).to_pydict()
        except Exception:  # noqa: BLE001 - an unreadable index only disables the check
            table = {}
        cached = {}
        if "member_sha256" in table:
            for key, status, shard, digests in zip(table["key"], table["status"], table["shard"], table["member_sha256"]):
                if status == "kept" and digests:
                    cached[key] = (shard, digests)
        _DIGESTS[str(index)] = cached
    return cached


def _tar_samples(urls: list[str], log: DamageLog) -> Iterator[dict[str, Any]]:
    """Samples of local tars, checked; remote URLs go through webdataset with the same policy."""
    from pipeline.shards.integrity import DamagedShard, decode_digests, sample_matches
    from pipeline.shards.writer import read_tar_samples

    for url in urls:
        local = url.removeprefix("file://")
        if "://" in local:
            def handler(error: Exception, url: str = url) -> bool:
                log.damaged(url, f"unreadable ({type(error).__name__}: {str(error).split(' @ ')[0][:200]})", 1)
                return True
            yield from wds.tarfile_to_samples(handler=handler)(iter([{"url": url}]))
            continue
        digests = _index_digests(local)
        name = os.path.basename(local)
        expected = sum(1 for shard, _ in digests.values() if os.path.basename(shard) == name)
        delivered = 0
        try:
            for key, members in read_tar_samples(Path(local), plain_keys=False):
                recorded = digests.get(key)
                difference = sample_matches(members, decode_digests(recorded[1])) if recorded else None
                if difference:
                    log.damaged(local, f"sample {key}: {difference}", 1)
                    delivered += 1
                    continue
                delivered += 1
                yield {"__key__": key, "__url__": url, **members}
        except DamagedShard as error:
            log.damaged(local, error.reason, max(1, expected - delivered))
            continue
        if delivered < expected:
            log.damaged(local, f"holds {delivered} samples, its index lists {expected}", expected - delivered)


def reader_shards(shards: list[str], source: int, seed: int, epoch: int, rank: int, world_size: int, worker: int,
                  num_workers: int) -> tuple[list[str], int | None]:
    """What one reader reads in one epoch: (tars in order, None) when split by shard, or
    (every tar in order, its sample offset) when split sample by sample (every `splits`-th sample).

    The one place the split is decided: the stream and `window_preflight` both use it.
    """
    splits = world_size * num_workers
    order = list(shards)
    random.Random(_seed(seed, source, epoch, "shards")).shuffle(order)
    if len(shards) >= splits:
        # what wds.split_by_node / split_by_worker do, but from the explicit rank and loader worker:
        # they read RANK/WORLD_SIZE from the environment, which loader processes may not inherit
        mine = list(islice(order, rank, None, world_size))
        return list(islice(mine, worker, None, num_workers)), None
    return order, rank * num_workers + worker


def _raw_stream(shards: list[str], source: int, seed: int, rank: int, world_size: int, worker: int,
                num_workers: int, shuffle_buffer: int, start_epoch: int = 0,
                log: DamageLog | None = None) -> Iterator[dict[str, Any]]:
    """Raw tar samples for one reader, epoch after epoch (infinite); each carries `__epoch__`."""
    splits = world_size * num_workers
    log = log or DamageLog()
    epoch = start_epoch
    while True:
        urls, offset = reader_shards(shards, source, seed, epoch, rank, world_size, worker, num_workers)
        samples = _tar_samples(urls, log)
        if offset is not None:
            samples = islice(samples, offset, None, splits)
        shuffled = wds.shuffle(shuffle_buffer, initial=shuffle_buffer,
                               seed=_seed(seed, source, epoch, rank, worker, "buffer"))(samples)
        produced = 0
        for sample in shuffled:
            produced += 1
            sample["__epoch__"] = epoch
            yield sample
        if produced == 0:
            skipped = f" ({log.samples} damaged sample(s) skipped)" if log.samples else ""
            raise DataStarved(f"{shards[0]} (and {len(shards) - 1} more shards): reader rank {rank} / loader worker "
                              f"{worker} got no samples{skipped}",
                              hint="the source needs at least (workers x loader_workers) clips in non-empty, "
                                   "undamaged tars")
        epoch += 1


class ClipWindows(torch.utils.data.IterableDataset):
    """Infinite stream of decoded windows for one training rank; splits itself across loader workers."""

    def __init__(self, sources: list[tuple[list[str], float]], spec: WindowSpec, *, seed: int, rank: int,
                 world_size: int, shuffle_buffer: int, position: DataPosition | None = None,
                 latents: bool = False, batch_size: int = 0, on_damaged: str = "skip") -> None:
        super().__init__()
        if not sources:
            raise UserError("data: no sources", hint="pass --data DATASET or set data.sources in the config")
        self.sources = sources
        self.spec = spec
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle_buffer = shuffle_buffer
        self.position = position or DataPosition()
        self.latents = latents
        self.batch_size = batch_size  # the DataLoader's; needed to turn batches consumed into samples
        if on_damaged not in ("skip", "stop"):
            raise UserError(f"data.on_damaged: {on_damaged!r} is not skip or stop")
        self.on_damaged = on_damaged

    def _skip_for(self, worker: int, num_workers: int, batch_size: int) -> tuple[int, int]:
        """(samples to skip, epoch offset) for this loader worker from the saved position.

        DataLoader fetches whole batches round-robin from its workers, so after n batches worker w
        has delivered ceil((n - w) / W) batches.
        """
        pos = self.position
        if pos.batches == 0:
            return 0, 0
        if (pos.batch_size, max(pos.loader_workers, 1), pos.world_size) != (batch_size, num_workers, self.world_size):
            return 0, 1 + pos.batches  # layout changed: start a fresh, distinct epoch
        delivered = max(0, (pos.batches - worker + num_workers - 1) // num_workers)
        return delivered * batch_size, 0

    def samples(self, worker: int = 0, num_workers: int = 1, batch_size: int = 0) -> Iterator[dict[str, Any]]:
        # A fresh DataLoader asks worker 0 first, but batch number `batches` belonged to worker
        # batches % W before the restart: take over that worker's stream.
        if self._skip_for(worker, num_workers, batch_size)[1] == 0:
            worker = (worker + self.position.batches) % num_workers
        skip, epoch_offset = self._skip_for(worker, num_workers, batch_size)
        log = DamageLog(policy=self.on_damaged)
        streams = [
            _raw_stream(shards, index, self.seed, self.rank, self.world_size, worker, num_workers,
                        self.shuffle_buffer, start_epoch=epoch_offset, log=log)
            for index, (shards, _) in enumerate(self.sources)
        ]
        weights = [weight for _, weight in self.sources]
        mix = random.Random(_seed(self.seed, self.rank, worker, epoch_offset, "mix"))
        # watchdog: per source, the epoch in which its current run of unusable clips began
        # (None after a usable one); a source whose run spans a whole epoch is starved
        unusable_since: list[int | None] = [None] * len(streams)
        starved: set[int] = set()
        emitted = 0
        while True:
            source = mix.choices(range(len(streams)), weights)[0] if len(streams) > 1 else 0
            raw = next(streams[source])
            if self.latents:
                if emitted < skip:
                    emitted += 1
                    continue
                window = latent_window(raw)
            else:
                window_rng = random.Random(_seed(self.seed, raw["__key__"], emitted, self.rank, worker, "window"))
                plan = plan_clip(raw, self.spec, window_rng)
                if plan is None:  # too short for a window: skipped the same way when resuming
                    epoch = raw["__epoch__"]
                    if unusable_since[source] is None:
                        unusable_since[source] = epoch
                    elif epoch >= unusable_since[source] + 2 and source not in starved:
                        starved.add(source)  # every clip of epoch `unusable_since + 1` was unusable
                        self._starved(source, worker, starved, len(streams))
                    continue
                unusable_since[source] = None
                starved.discard(source)
                if emitted < skip:  # resume: replay the draws, skip the pixel decode
                    emitted += 1
                    continue
                window = clip_window(raw, plan, self.spec)
            window["source"] = source
            window["data_skipped"] = torch.tensor(log.samples)   # damaged samples this reader skipped so far
            emitted += 1
            yield window

    def _starved(self, source: int, worker: int, starved: set[int], sources: int) -> None:
        spec = self.spec
        shards = self.sources[source][0]
        what = (f"rank {self.rank} (loader worker {worker}) went a whole pass over its share of {shards[0]}"
                f"{f' and {len(shards) - 1} more shards' if len(shards) > 1 else ''} without a clip long enough "
                f"for a window of {spec.frames} frames at {spec.fps:g} fps")
        if len(starved) == sources:
            raise DataStarved(what, hint="lower data.frames or data.fps, give the rank more or longer clips "
                                         "(fewer workers), or `worldloom select --where 'frames >= N'`")
        print(f"warning: {what}; that source is effectively weight 0 on this rank", file=sys.stderr, flush=True)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info else (0, 1)
        return self.samples(worker, num_workers, self.batch_size)


def latent_window(sample: dict[str, Any]) -> dict[str, Any]:
    """A sample written by `worldloom encode`: latents and aligned conditioning, no decoding."""
    meta = json.loads(sample[JSON]) if JSON in sample else {}
    return {
        "key": sample["__key__"],
        "latents": torch.from_numpy(_npy(sample[LATENTS]).astype(np.float32)),
        "poses": torch.from_numpy(_npy(sample[POSES]).astype(np.float32)),
        "actions": torch.from_numpy(_npy(sample[ACTIONS]).astype(np.float32)),
        "has_actions": torch.tensor(bool(meta.get("has_actions", True))),
        "intrinsics": torch.from_numpy(_npy(sample[INTRINSICS]).astype(np.float32)),
        "caption": str(meta.get("caption", "")),
        "window_start": int(meta.get("window_start", 0)),
    }


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    batch: dict[str, Any] = {}
    for name in samples[0]:
        values = [s[name] for s in samples]
        # numpy stacking is a plain memcpy; torch.stack on uint8 video was measured 10x slower here
        batch[name] = (torch.from_numpy(np.stack([v.numpy() for v in values]))
                       if isinstance(values[0], torch.Tensor) else values)
    return batch


@dataclass
class LoaderHandle:
    """Batches plus the position counter the checkpoint saves.

    With loader processes, a torch DataLoader runs the dataset in them; without, the dataset is
    read in this process and collated here (the DataLoader machinery measured ~10% of the loader's
    time for nothing in return).
    """

    dataset: ClipWindows
    loader: torch.utils.data.DataLoader | None
    position: DataPosition
    _iterator: Iterator[Any] | None = field(default=None, repr=False)

    def next_batch(self) -> dict[str, Any]:
        if self._iterator is None:
            self._iterator = iter(self.loader) if self.loader is not None else iter(self.dataset)
        if self.loader is not None:
            batch = next(self._iterator)
        else:
            batch = collate([next(self._iterator) for _ in range(self.dataset.batch_size)])
        self.position.batches += 1
        return batch


def make_loader(sources: list[tuple[str, float]], spec: WindowSpec, *, batch_size: int, seed: int, rank: int,
                world_size: int, shuffle_buffer: int, loader_workers: int,
                position: DataPosition | None = None, latents: bool = False,
                on_damaged: str = "skip") -> LoaderHandle:
    """The per-rank loader. `position` (from a checkpoint) makes it continue where it stopped."""
    resolved = [(resolve_shards(path), weight) for path, weight in sources]
    dataset = ClipWindows(resolved, spec, seed=seed, rank=rank, world_size=world_size,
                          shuffle_buffer=shuffle_buffer, position=position, latents=latents, batch_size=batch_size,
                          on_damaged=on_damaged)
    loader = None
    if loader_workers > 0:
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, collate_fn=collate, num_workers=loader_workers,
            # fork inside Ray actors is unsafe (threads); forkserver starts clean processes
            multiprocessing_context="forkserver", persistent_workers=True, prefetch_factor=2,
        )
    restored = position or DataPosition()
    current = DataPosition(batches=restored.batches, batch_size=batch_size,
                           loader_workers=loader_workers, world_size=world_size)
    return LoaderHandle(dataset=dataset, loader=loader, position=current)


# --------------------------------------------------------------------------- preflight


@dataclass
class DataPreflight:
    """How many clips can give a window, in total and per rank (from the datasets' indexes)."""

    clips: int = 0
    usable: int = 0
    per_rank: list[int] = field(default_factory=list)       # usable clips each rank reads in the first epoch
    unchecked: list[str] = field(default_factory=list)      # sources without an index (not counted)
    upscaled: int = 0                                       # usable clips smaller than the window's resolution

    def summary(self, spec: WindowSpec) -> str:
        text = (f"data: {self.usable} of {self.clips} clips are long enough for a window of {spec.frames} frames at "
                f"{spec.fps:g} fps; per rank {self.per_rank}")
        if self.upscaled:
            text += f"; {self.upscaled} are smaller than {spec.width}x{spec.height} and will be upscaled"
        if self.unchecked:
            text += f"; not checked (no index.parquet): {', '.join(self.unchecked)}"
        return text


def window_fits(frames: int, fps: float, spec: WindowSpec) -> bool:
    """Whether a clip of `frames` at `fps` gives a window (the same rule as `plan_window`)."""
    stride = max(1, round((fps or spec.fps) / spec.fps))
    return (spec.frames - 1) * stride + 1 <= frames


def _tar_keys(url: str) -> list[str]:
    """Sample keys of a tar in order, from its headers (no member is read)."""
    import tarfile

    keys: list[str] = []
    try:
        with tarfile.open(url, mode="r:") as archive:
            for member in archive:
                key = member.name.split(".", 1)[0]
                if member.isfile() and (not keys or keys[-1] != key):
                    keys.append(key)
    except (tarfile.TarError, OSError, EOFError):
        pass  # damaged: the loader skips it; counted as no usable clips here
    return keys


def window_preflight(sources: list[tuple[str, float]], spec: WindowSpec, *, world_size: int, loader_workers: int,
                     seed: int) -> DataPreflight:
    """Count the clips that fit the window, in total and per rank, before any worker starts.

    Uses each source's index.parquet (frames, fps, width, height of kept clips) and the same
    shard/sample split as the loader, for the first epoch. Raises `DataStarved` (one line) when
    a rank would get no usable clip from any source: it would otherwise skip forever while the
    other ranks wait for it in DDP.
    """
    import pyarrow.parquet as pq

    report = DataPreflight(per_rank=[0] * world_size)
    num_workers = max(1, loader_workers)
    reader_usable = {(rank, worker): 0 for rank in range(world_size) for worker in range(num_workers)}
    for number, (path, _) in enumerate(sources):
        shards = resolve_shards(path)
        index = _index_file(shards[0].removeprefix("file://")) if shards and "://" not in shards[0].removeprefix("file://") else None
        if index is None:
            report.unchecked.append(path)
            for reader in reader_usable:
                reader_usable[reader] += 1  # unknown: never refuse on a source we cannot see
            continue
        table = pq.read_table(index, columns=["key", "status", "shard", "frames", "fps", "width", "height"]).to_pydict()
        fits: dict[str, bool] = {}
        by_shard: dict[str, list[str]] = {}
        for key, status, shard, frames, fps, width, height in zip(*(table[c] for c in (
                "key", "status", "shard", "frames", "fps", "width", "height"))):
            if status != "kept":
                continue
            ok = window_fits(int(frames), float(fps), spec)
            fits[key] = ok
            by_shard.setdefault(os.path.basename(shard), []).append(key)
            report.clips += 1
            if ok:
                report.usable += 1
                report.upscaled += int(width < spec.width or height < spec.height)
        for rank in range(world_size):
            for worker in range(num_workers):
                urls, offset = reader_shards(shards, number, seed, 0, rank, world_size, worker, num_workers)
                if offset is None:
                    count = sum(fits.get(key, False) for url in urls for key in by_shard.get(os.path.basename(url), []))
                else:
                    stream = [key for url in urls for key in _tar_keys(url.removeprefix("file://"))]
                    count = sum(fits.get(key, False) for key in stream[offset::world_size * num_workers])
                reader_usable[(rank, worker)] += count
                report.per_rank[rank] += count
    starved = sorted(reader for reader, count in reader_usable.items() if count == 0)
    if starved:
        rank, worker = starved[0]
        where = f"rank {rank}" + (f" (loader worker {worker})" if loader_workers > 1 else "")
        raise DataStarved(
            f"{', '.join(p for p, _ in sources)}: {where} would get no clip long enough for a window of {spec.frames} "
            f"frames at {spec.fps:g} fps ({report.usable} of {report.clips} clips fit; per rank {report.per_rank})",
            hint="lower data.frames or data.fps, use fewer workers (--num-workers), or add longer clips")
    return report
