"""Live progress (rich) and the end-of-run summary table."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


@dataclass
class RunCounts:
    requested: int = 0
    skipped: int = 0          # done in an earlier run (resume)
    rendered: int = 0
    kept: int = 0
    rejected: int = 0
    failed: int = 0
    retried: int = 0          # failed attempts that were retried
    frames: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)


class RunProgress:
    """The live bar. Its columns fit 80 terminal columns: rich truncates a line that does not
    fit from the right, which used to cut the ETA down to `0:…`."""

    def __init__(self, total: int, *, enabled: bool, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.started = time.perf_counter()
        self.counts = RunCounts()
        self._progress = None
        if enabled:
            self._progress = generate_bar(self.console)
            self._task = self._progress.add_task("clips", total=total, rendered=0, kept=0, rejected=0, failed=0, fps=0.0)
            self._progress.start()

    def frames_per_second(self) -> float:
        elapsed = time.perf_counter() - self.started
        return self.counts.frames / elapsed if elapsed > 0 else 0.0

    def refresh(self, advance: int = 0) -> None:
        if self._progress is None:
            return
        c = self.counts
        self._progress.update(self._task, advance=advance, rendered=c.rendered, kept=c.kept, rejected=c.rejected,
                              failed=c.failed, fps=self.frames_per_second())

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def generate_bar(console: Console) -> Progress:
    """`generate ━━━━━━━━━━ 12/40 kept 8 rej 2 fail 0 31 f/s eta 0:01:10` (<= 80 columns up to
    99,999 clips; wall time and the full counts are in the summary table at the end)."""
    return Progress(
        TextColumn("[bold]generate"), BarColumn(bar_width=10), MofNCompleteColumn(),
        TextColumn("kept [green]{task.fields[kept]}[/] rej [yellow]{task.fields[rejected]}[/] "
                   "fail [red]{task.fields[failed]}[/] {task.fields[fps]:.0f} f/s"),
        TextColumn("eta"), TimeRemainingColumn(),
        console=console, transient=False,
    )


def summary_table(counts: RunCounts, *, wall_seconds: float, efficiency: float | None, out: str,
                  shards: int, status: str, startup_seconds: float = 0.0) -> Table:
    table = Table(title=f"generate: {status}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("clips requested", str(counts.requested))
    table.add_row("done earlier (resumed)", str(counts.skipped))
    table.add_row("rendered this run", str(counts.rendered))
    table.add_row("kept", f"[green]{counts.kept}")
    table.add_row("rejected", f"[yellow]{counts.rejected}")
    for reason, number in sorted(counts.rejects_by_reason.items()):
        table.add_row(f"  rejected: {reason}", str(number))
    table.add_row("failed", f"[red]{counts.failed}" if counts.failed else "0")
    table.add_row("render attempts retried", str(counts.retried))
    minutes = wall_seconds / 60 if wall_seconds > 0 else 0
    table.add_row("wall time", f"{wall_seconds:.1f} s (stage start-up {startup_seconds:.1f} s)")
    table.add_row("throughput", f"{counts.rendered / minutes if minutes else 0:.1f} clips/min, "
                                f"{counts.frames / wall_seconds if wall_seconds else 0:.1f} frames/s")
    if efficiency is not None:
        table.add_row("pipeline efficiency", f"{efficiency:.2f} (stage CPU time / (streaming wall x cores))")
    table.add_row("shards", str(shards))
    table.add_row("output", out)
    return table
