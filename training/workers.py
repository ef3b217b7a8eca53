"""Per-worker bookkeeping of a training run: heartbeat files, an event log, and metric means over ranks."""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass
class WorkerFiles:
    """`run_dir/workers/`: a heartbeat per rank (pid, node, step) and an event log.

    Operators read them to see where workers run; the CLI's progress bar reads rank 0's step and
    loss; the fault-tolerance test reads the pid.
    """

    folder: Path
    rank: int

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def heartbeat(self, step: int, **extra: Any) -> None:
        import ray

        data = {"rank": self.rank, "pid": os.getpid(), "step": step, "host": socket.gethostname(),
                "node_id": ray.get_runtime_context().get_node_id(), "time": time.time(), **extra}
        temporary = self.folder / f".rank{self.rank}.json.tmp"
        temporary.write_text(json.dumps(data))
        os.replace(temporary, self.folder / f"rank{self.rank}.json")

    def event(self, **data: Any) -> None:
        with open(self.folder / "events.jsonl", "a") as handle:
            handle.write(json.dumps({"rank": self.rank, "pid": os.getpid(), "time": time.time(), **data}) + "\n")


def all_mean(values: list[float], device: torch.device) -> list[float]:
    """The mean of each value over all ranks (itself without a process group); a collective: every rank calls it."""
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    if torch.distributed.is_initialized():
        torch.distributed.all_reduce(tensor)
        tensor /= torch.distributed.get_world_size()
    return tensor.tolist()
