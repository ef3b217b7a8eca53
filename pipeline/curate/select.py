"""`worldloom select DATASET --where EXPR --out NEW`: re-shard from the index alone.

The expression is evaluated on the index (every score is a column; see expression.py for
the grammar). Matching kept clips are copied byte for byte into new shards, in the source's
order, with their index rows. No video is decoded and no model runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from contract.errors import UserError
from pipeline.curate.expression import evaluate
from pipeline.curate.reshard import SourcePick, load_kept_rows, write_picks
from pipeline.shards import code_version, read_index


@dataclass
class SelectSummary:
    candidates: int
    selected: int
    shards: int


def run_select(dataset: Path, where: str, out: Path) -> SelectSummary:
    dataset = Path(dataset)
    kept = load_kept_rows(dataset)
    index = read_index(dataset / "index.parquet")
    index = index[index["status"] == "kept"].reset_index(drop=True)
    mask = evaluate(where, index)
    chosen = set(index.loc[mask, "key"])
    rows = {row["key"]: row for row in kept if row["key"] in chosen}
    if not rows:
        raise UserError(f"--where {where!r}: matches no kept clip (of {len(index)} in {dataset})",
                        hint="loosen the thresholds; `worldloom inspect` shows the score ranges")
    document = {"created_by": "worldloom select", "code": code_version(),
                "parents": [{"path": str(dataset.resolve()), "where": where}],
                "selection": {"candidates": len(index), "selected": len(rows)}}
    count, shards = write_picks(out, [SourcePick(dataset, rows)], document)
    return SelectSummary(candidates=len(index), selected=count, shards=len(shards))


def selected_keys(dataset: Path, where: str) -> list[str]:
    """The keys `select` would copy (for previews and tests)."""
    index: pd.DataFrame = read_index(Path(dataset) / "index.parquet")
    index = index[index["status"] == "kept"].reset_index(drop=True)
    return sorted(index.loc[evaluate(where, index), "key"])
