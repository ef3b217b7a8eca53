"""`worldloom mix --source real=DIR:0.3 --source synthetic=DIR:0.7 --out NEW`.

A deterministic fine-tuning mixture. Counts per source follow the weights (largest remainder
rounding of `weight x total`); `total` defaults to the largest mixture that needs no clip
twice. Which clips a source contributes is a seeded permutation of its kept keys (seed from
sha256 of `"{seed}/{name}"`, so adding a source never changes another source's draw). The
sources are interleaved evenly in the shards; samples are copied byte for byte.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contract.errors import UserError
from pipeline.curate.reshard import SourcePick, load_kept_rows, write_picks
from pipeline.shards import code_version


@dataclass(frozen=True)
class MixSource:
    name: str
    dataset: Path
    weight: float


@dataclass
class MixSummary:
    total: int
    shards: int
    per_source: list[tuple[str, int, float]] = field(default_factory=list)


def parse_source(text: str) -> MixSource:
    match = re.fullmatch(r"([a-z0-9_]+)=(.+):([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)", text.strip())
    if not match:
        raise UserError(f"--source {text!r}: expected NAME=DIR:WEIGHT", hint="e.g. --source real=data/real:0.3")
    name, folder, weight = match.group(1), Path(match.group(2)), float(match.group(3))
    if not math.isfinite(weight) or weight <= 0:
        # 1e309 parses to inf (and 1e-400 to 0): inf/inf shares are NaN, so refuse them here
        raise UserError(f"--source {text!r}: weight {match.group(3)} must be a finite number > 0", hint="e.g. real=data/real:0.3")
    if not folder.is_dir():
        raise UserError(f"--source {text!r}: {folder} is not a folder", hint="point at a dataset folder")
    return MixSource(name, folder, weight)


def _largest_remainder(weights: list[float], total: int) -> list[int]:
    exact = [w * total for w in weights]
    counts = [math.floor(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _seeded_order(keys: list[str], seed: int, name: str) -> list[str]:
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    ordered = sorted(keys)
    return [ordered[i] for i in rng.permutation(len(ordered))]


def plan_mix(available: dict[str, list[str]], sources: list[MixSource], seed: int, total: int | None) -> dict[str, list[str]]:
    """name -> chosen keys. Pure function of its arguments."""
    weight_sum = sum(s.weight for s in sources)
    if not math.isfinite(weight_sum) or any(s.weight / weight_sum == 0.0 for s in sources):
        raise UserError("--source: the weights are too far apart to share out (one overflows or rounds to a zero share)",
                        hint="give weights in a sane range, e.g. 0.3 and 0.7")
    weights = [s.weight / weight_sum for s in sources]
    if total is None:
        total = min(math.floor(len(available[s.name]) / w + 1e-9) for s, w in zip(sources, weights, strict=False))
        while total > 0 and any(c > len(available[s.name]) for s, c in zip(sources, _largest_remainder(weights, total), strict=False)):
            total -= 1
    if total < 1:
        raise UserError("mix: the sources have no kept clips to mix", hint="check each --source DIR")
    counts = _largest_remainder(weights, total)
    for source, count in zip(sources, counts, strict=False):
        if count > len(available[source.name]):
            raise UserError(
                f"--source {source.name}: needs {count} clips for --total {total} but {source.dataset} has {len(available[source.name])} kept",
                hint="lower --total or that source's weight",
            )
    return {s.name: _seeded_order(available[s.name], seed, s.name)[:c] for s, c in zip(sources, counts, strict=False)}


def run_mix(sources: list[MixSource], out: Path, *, seed: int = 0, total: int | None = None) -> MixSummary:
    if len({s.name for s in sources}) != len(sources):
        raise UserError("--source: each NAME must be used once", hint="e.g. --source real=...:0.3 --source synthetic=...:0.7")
    if total is not None and total < 1:
        raise UserError(f"--total {total}: must be >= 1", hint="omit it to use as many clips as the weights allow")
    rows = {s.name: {row["key"]: row for row in load_kept_rows(s.dataset)} for s in sources}
    seen: set[str] = set()
    available: dict[str, list[str]] = {}
    for source in sources:  # a key already offered by an earlier source is the same clip: offer it once
        available[source.name] = sorted(k for k in rows[source.name] if k not in seen)
        seen.update(available[source.name])
    chosen = plan_mix(available, sources, seed, total)
    picks = [SourcePick(s.dataset, {k: rows[s.name][k] for k in chosen[s.name]}) for s in sources]
    document = {"created_by": "worldloom mix", "code": code_version(), "seed": seed,
                "parents": [{"name": s.name, "path": str(Path(s.dataset).resolve()), "weight": s.weight,
                             "clips": len(chosen[s.name]), "keys": sorted(chosen[s.name])} for s in sources]}
    count, shards = write_picks(out, picks, document)
    return MixSummary(total=count, shards=len(shards),
                      per_source=[(s.name, len(chosen[s.name]), s.weight) for s in sources])
