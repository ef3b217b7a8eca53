"""The per-rank stream: readers of every source mixed by weight into windows, batched, resumable.

Every random draw is seeded from (seed, source, epoch, rank, worker), so the stream is a pure
function of the config and its position: resuming = rebuilding the stream and skipping the
samples already consumed (replaying the window draws, no pixel decoding). `ClipWindows` is the
dataset (it splits itself across DataLoader workers); `make_loader` the handle the loop uses.
"""
from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from contract.errors import UserError
from training.data_discovery import resolve_shards
from training.data_errors import DataStarved
from training.data_readers import DamageLog, raw_stream, seed_of
from training.data_windows import WindowSpec, clip_window, latent_window, plan_window


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
    def from_dict(cls, data: dict[str, int] | None) -> DataPosition:
        return cls(**data) if data else cls()


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
            raw_stream(shards, index, self.seed, self.rank, self.world_size, worker, num_workers,
                        self.shuffle_buffer, start_epoch=epoch_offset, log=log)
            for index, (shards, _) in enumerate(self.sources)
        ]
        weights = [weight for _, weight in self.sources]
        mix = random.Random(seed_of(self.seed, self.rank, worker, epoch_offset, "mix"))
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
                window_rng = random.Random(seed_of(self.seed, raw["__key__"], emitted, self.rank, worker, "window"))
                plan = plan_window(raw, self.spec, window_rng)
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
