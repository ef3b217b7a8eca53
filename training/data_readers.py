"""One reader's raw samples: which tars it reads in an epoch, reading them checked, epoch after epoch.

A reader is one (rank, DataLoader worker) pair. `reader_shards` decides its share, by shard when
a source has enough tars and sample by sample otherwise (so tiny datasets still feed every
rank); `tar_samples` reads local tars through `pipeline.shards` (keys and member sha256 checked
against the index) and applies `data.on_damaged`; `raw_stream` shuffles each epoch with a seeded
buffer and stops with one line when a whole epoch gives nothing.
"""
from __future__ import annotations

import hashlib
import os
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import webdataset as wds

from training.data_discovery import index_digests
from training.data_errors import DataDamaged, DataStarved


def seed_of(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "little")


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


def tar_samples(urls: list[str], log: DamageLog) -> Iterator[dict[str, Any]]:
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
        digests = index_digests(local)
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
    random.Random(seed_of(seed, source, epoch, "shards")).shuffle(order)
    if len(shards) >= splits:
        # what wds.split_by_node / split_by_worker do, but from the explicit rank and loader worker:
        # they read RANK/WORLD_SIZE from the environment, which loader processes may not inherit
        mine = list(islice(order, rank, None, world_size))
        return list(islice(mine, worker, None, num_workers)), None
    return order, rank * num_workers + worker


def raw_stream(shards: list[str], source: int, seed: int, rank: int, world_size: int, worker: int,
                num_workers: int, shuffle_buffer: int, start_epoch: int = 0,
                log: DamageLog | None = None) -> Iterator[dict[str, Any]]:
    """Raw tar samples for one reader, epoch after epoch (infinite); each carries `__epoch__`."""
    splits = world_size * num_workers
    log = log or DamageLog()
    epoch = start_epoch
    while True:
        urls, offset = reader_shards(shards, source, seed, epoch, rank, world_size, worker, num_workers)
        samples = tar_samples(urls, log)
        if offset is not None:
            samples = islice(samples, offset, None, splits)
        shuffled = wds.shuffle(shuffle_buffer, initial=shuffle_buffer,
                               seed=seed_of(seed, source, epoch, rank, worker, "buffer"))(samples)
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
