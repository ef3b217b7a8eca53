"""The in-flight loop of generate: which clip renders where, retries, and the order of writes.

Why a loop of its own: it is the part of generate that must hold under failure and load, and
it is easiest to reason about alone. Backpressure: at most `render_queue` clips wait per render
actor and at most a window of clips is in flight overall (rendering, processing, or finished
but waiting for their turn). A failed render goes to the front of the queue again until its
attempts are spent (`pipeline.retries.RetryPolicy`, the rule curate uses too); a processing
error is recorded, not retried (the same pixels would fail the same way). Finished clips are
handed to the writer strictly in the order they were pulled (key order), through a small
reorder buffer, so shard layout and bytes do not depend on which actor finished first.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from pipeline.generate.config import GenerateConfig
from pipeline.generate.progress import RunProgress
from pipeline.generate.records import Outcome
from pipeline.generate.tasks import ClipTask
from pipeline.retries import RetryPolicy

EventHook = Callable[[str, dict[str, Any]], None]


def stream(todo: Iterator[ClipTask], config: GenerateConfig, actors: dict[str, list[Any]], progress: RunProgress,
           emit: EventHook, write: Callable[[Outcome], None]) -> None:
    """Pull tasks from the lazy `todo` as the window allows; hand finished clips to `write` in pull (key) order."""
    import ray

    renderers, processors, embedders = actors["render"], actors["process"], actors["embed"]
    retry: deque[ClipTask] = deque()                  # failed renders to try again, before new tasks
    order: deque[str] = deque()                       # pulled but not yet written, in write order
    exhausted = False
    finished: dict[str, Outcome] = {}
    load = [0] * len(renderers)
    rendering: dict[Any, tuple[ClipTask, int, Any]] = {}   # status ref -> (task, actor, payload ref)
    # embed ref -> (task, processed ref, payload ref, frames)
    downstream: dict[Any, tuple[ClipTask, Any, Any, int]] = {}
    window = len(renderers) * config.render_queue + 2 * (len(processors) + len(embedders))
    round_robin = 0
    counts = progress.counts
    policy = RetryPolicy(config.retries)

    def in_flight() -> int:
        return len(rendering) + len(downstream) + len(finished)

    while True:
        # submit renders: per-actor queue limit and a global window (backpressure)
        while in_flight() < window and (retry or not exhausted):
            actor = min(range(len(renderers)), key=lambda i: (load[i], i))
            if load[actor] >= config.render_queue:
                break
            if retry:
                task = retry.popleft()
            else:
                task = next(todo, None)
                if task is None:
                    exhausted = True
                    break
                order.append(task.key)
            task.attempts += 1
            status_ref, payload_ref = renderers[actor].render.options(num_returns=2).remote(task.key, task.clip)
            rendering[status_ref] = (task, actor, payload_ref)
            load[actor] += 1
        if exhausted and not order:
            break
        waiting = list(rendering) + list(downstream)
        ready, _ = ray.wait(waiting, num_returns=1, timeout=0.5) if waiting else ([], [])
        for ref in ready:
            if ref in rendering:
                task, actor, payload_ref = rendering.pop(ref)
                load[actor] -= 1
                try:
                    status = ray.get(ref)
                except Exception as error:  # the actor process died
                    status = {"ok": False, "error": f"render actor died: {type(error).__name__}"}
                if status["ok"]:
                    counts.rendered += 1
                    counts.frames += int(status["frames"])
                    processor = processors[round_robin % len(processors)]
                    embedder = embedders[round_robin % len(embedders)] if embedders else None
                    round_robin += 1
                    processed_ref = processor.process.remote(payload_ref)
                    final_ref = embedder.embed.remote(payload_ref, processed_ref) if embedder else processed_ref
                    downstream[final_ref] = (task, processed_ref, payload_ref, int(status["frames"]))
                    emit("rendered", {"key": task.key, "attempt": task.attempts, "endpoint": status.get("endpoint")})
                else:
                    task.errors.append(status["error"])
                    emit("render_failed", {"key": task.key, "attempt": task.attempts, "error": status["error"]})
                    if policy.allows_another(task.attempts):
                        counts.retried += 1
                        retry.appendleft(task)
                    else:
                        finished[task.key] = Outcome(task, "failed", error=status["error"])
            else:
                task, processed_ref, payload_ref, frames = downstream.pop(ref)
                try:
                    processed = ray.get(processed_ref)
                    embedding = ray.get(ref) if ref is not processed_ref else None
                    finished[task.key] = Outcome(task, "ok", processed=processed, embedding=embedding, frames=frames)
                except Exception as error:  # processing errors are recorded, not retried
                    finished[task.key] = Outcome(task, "failed", error=f"processing: {type(error).__name__}: "
                                                  f"{' '.join(str(error).split())[:300]}")
        # write everything that is next in key order
        while order and order[0] in finished:
            write(finished.pop(order.popleft()))
            progress.refresh(advance=1)
        progress.refresh()
