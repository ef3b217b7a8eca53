"""Run work on Unreal's game thread, from any thread.

Only the game thread may touch `unreal.*`. gRPC handlers run on pool threads, so they never
call the engine: they `submit()` a task and wait on the returned `Future`. A tick callback
registered with `unreal.register_slate_post_tick_callback` drains the queue on the game thread
(the pattern Epic's own send2ue RPC server and TongSIM use).

A task is a callable run on the game thread. If it returns a generator, the generator is a
multi-tick task: it is advanced once per tick (each `yield` hands the game thread back to the
editor until the next tick) and its `return` value resolves the future. Multi-tick tasks are
how frame pacing works: one simulation step and capture per tick, never a loop that blocks the
editor (which would starve the very renderer we wait for).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass, field
from types import GeneratorType
from typing import Any

log = logging.getLogger("worldloom.unreal.game_thread")

__all__ = ["GameThreadExecutor", "GameThreadStalled"]


class GameThreadStalled(RuntimeError):
    """The editor stopped ticking (a modal dialog, a hang, a breakpoint): no work can run.

    Reaches the client as UNAVAILABLE, so it restarts the server and resumes the clip."""

    @property
    def grpc_status_code(self):  # resolved lazily: this module must import without grpc
        import grpc

        return grpc.StatusCode.UNAVAILABLE


@dataclass
class _Task:
    fn: Callable[[], Any]
    future: Future = field(default_factory=Future)
    generator: GeneratorType | None = None


class GameThreadExecutor:
    """A queue that gRPC threads fill and the editor's tick drains."""

    def __init__(self) -> None:
        self._incoming: queue.SimpleQueue[_Task] = queue.SimpleQueue()
        self._active: list[_Task] = []
        self._handle: Any = None
        self._unreal: Any = None
        self.ticks = 0
        self.last_tick_monotonic = time.monotonic()
        self._game_thread: int | None = None

    # -- game thread ---------------------------------------------------------------------

    def install(self, unreal: Any) -> None:
        """Register the tick callback. Call on the game thread (the start-up script runs there)."""
        self._unreal = unreal
        self._game_thread = threading.get_ident()
        self._handle = unreal.register_slate_post_tick_callback(self.tick)

    def uninstall(self) -> None:
        """Unregister the tick callback and fail whatever is still queued. Game thread only."""
        if self._handle is not None and self._unreal is not None:
            self._unreal.unregister_slate_post_tick_callback(self._handle)
            self._handle = None
        stopped = GameThreadStalled("the worldloom bridge was shut down")
        for task in self._active:
            task.future.set_exception(stopped)
        self._active.clear()
        while True:
            try:
                self._incoming.get_nowait().future.set_exception(stopped)
            except queue.Empty:
                break

    def tick(self, delta_seconds: float) -> None:
        """The tick callback: start queued tasks, then advance every multi-tick task one step."""
        self.ticks += 1
        self.last_tick_monotonic = time.monotonic()
        started: list[_Task] = []
        while True:
            try:
                task = self._incoming.get_nowait()
            except queue.Empty:
                break
            if not task.future.set_running_or_notify_cancel():
                continue
            try:
                result = task.fn()
            except BaseException as error:  # handed to the waiting thread
                task.future.set_exception(error)
                continue
            if isinstance(result, GeneratorType):
                task.generator = result
                started.append(task)
            else:
                task.future.set_result(result)
        # Tasks already running advance once; tasks started this tick take their first step now.
        for task in [*self._active, *started]:
            self._step(task)
        self._active = [task for task in [*self._active, *started] if not task.future.done()]

    @staticmethod
    def _step(task: _Task) -> None:
        try:
            next(task.generator)
        except StopIteration as stop:
            task.future.set_result(stop.value)
        except BaseException as error:
            task.future.set_exception(error)

    # -- any thread ----------------------------------------------------------------------

    def submit(self, fn: Callable[[], Any]) -> Future:
        """Queue `fn` for the game thread; never touches `unreal.*` itself."""
        task = _Task(fn)
        self._incoming.put(task)
        return task.future

    def on_game_thread(self) -> bool:
        """True when called from the thread that installed the executor (the editor's game thread)."""
        return threading.get_ident() == self._game_thread

    def seconds_since_tick(self) -> float:
        return time.monotonic() - self.last_tick_monotonic

    def wait(self, future: Future, *, timeout_s: float, stall_s: float, what: str) -> Any:
        """Wait for a future, failing clearly if the editor stops ticking or the work takes too long."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                future.cancel()
                raise TimeoutError(f"{what} did not finish within {timeout_s:.0f} s on the game thread")
            try:
                return future.result(timeout=min(0.25, remaining))
            except (TimeoutError, FutureTimeoutError):  # one class on 3.11+, two on the 3.9 of UE 5.3
                pass
            if self.seconds_since_tick() > stall_s:
                future.cancel()
                raise GameThreadStalled(
                    f"{what}: the editor's game thread has not ticked for {self.seconds_since_tick():.0f} s "
                    "(a modal dialog or a hang?); restart the editor and resume"
                )
