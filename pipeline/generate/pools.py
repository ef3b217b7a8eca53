"""The actor pools of generate: how many, how many CPUs each, start, measure, stop.

The actors themselves are in stages.py; this module sizes the pools against the CPUs Ray has
(one render actor per endpoint, else `workers`, else one procedural server per core the light
stages leave), refuses in one line a layout the cluster cannot schedule (Ray would wait
forever), and reads the actors' busy and CPU seconds for the run's efficiency.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline import ray_runtime
from pipeline.generate.config import GenerateConfig
from pipeline.ray_runtime import local_cpus

EventHook = Callable[[str, dict[str, Any]], None]


def stage_cpus(config: GenerateConfig, render_actors: int) -> float:
    res = config.resources
    per_render = res.render_remote if config.endpoints else res.render_local
    light = config.process_workers * res.process + (config.embed_workers * res.embed if config.clip.enabled else 0.0)
    return render_actors * per_render + light


def render_actor_count(config: GenerateConfig, cpus: float) -> int:
    """One actor per endpoint; else `workers`, or one procedural server per CPU the light stages leave."""
    if config.endpoints:
        return len(config.endpoints)
    if config.workers:
        return config.workers
    light = stage_cpus(config, 0)
    return max(1, int((cpus - light) // config.resources.render_local))


def ensure_ray(config: GenerateConfig) -> bool:
    """Connect to `ray_address`, reuse a running Ray (tests), or start a local one. True if we started it.

    The CPU rule is `pipeline.ray_runtime.ensure_ray`'s (shared with curate): a local Ray gets
    `local_ray_cpus` (default: the machine's cores), raised to what the stages declare.
    """
    cpus = float(local_cpus(config.local_ray_cpus))
    needed = stage_cpus(config, render_actor_count(config, cpus))
    return ray_runtime.ensure_ray(config.ray_address, cpus=config.local_ray_cpus, at_least=needed)


def check_fits(config: GenerateConfig, render_actors: int) -> None:
    """Fail in one line instead of waiting forever for CPUs the cluster does not have."""
    from contract.errors import UserError

    needed = stage_cpus(config, render_actors)
    available = ray_runtime.cpus_short(needed, free=True)
    if available is not None:
        raise UserError(
            f"generate: the stages need {needed:g} CPUs ({render_actors} render actors) but Ray has {available:g} free",
            hint="lower --workers, or the resources.* CPUs in the --config file, or add nodes to the cluster",
        )


def start_stages(config: GenerateConfig, cores: float, emit: EventHook) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    import ray

    from pipeline.generate.stages import remote_embed, remote_process, remote_render

    res = config.resources
    endpoints: list[str | None] = list(config.endpoints) or [None] * render_actor_count(config, cores)
    check_fits(config, len(endpoints))
    render_cls = remote_render(res.render_local)
    remote_cls = remote_render(res.render_remote)
    renderers = [
        (render_cls if endpoint is None else remote_cls).remote(
            endpoint, idle_timeout=config.client_idle_timeout_s, max_retries=config.client_max_retries,
            connect_timeout=config.client_connect_timeout_s,
            passes=config.passes, auth_token=config.auth_token)
        for endpoint in endpoints
    ]
    thresholds = config.thresholds.to_thresholds()
    encode = config.encode
    processors = [remote_process(res.process).remote(encode.crf, encode.gop, encode.preset, thresholds)
                  for _ in range(config.process_workers)]
    embedders = []
    clip_model: dict[str, Any] = {}
    if config.clip.enabled:
        embedders = [remote_embed(res.embed).remote(config.clip.model, config.clip.weights, config.clip.frames,
                                                    config.clip.seed, config.clip.text_similarity)
                     for _ in range(config.embed_workers)]
    infos = ray.get([actor.info.remote() for actor in renderers])
    for info in infos:
        emit("server", info)
    if embedders:
        clip_model = ray.get(embedders[0].describe.remote())
    return {"render": renderers, "process": processors, "embed": embedders}, clip_model


def stats(pool: list[Any]) -> list[dict[str, Any]]:
    import ray

    out = []
    for actor in pool:
        try:
            out.append(ray.get(actor.stats.remote(), timeout=30))
        except Exception:  # a dead actor has no stats
            out.append({})
    return out


def collect_busy(actors: dict[str, list[Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Per stage: (wall seconds inside calls, CPU seconds burnt, render servers included)."""
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for stage, pool in actors.items():
        if pool:
            numbers = stats(pool)
            wall[stage] = sum(float(s.get("busy_seconds", 0.0)) for s in numbers)
            cpu[stage] = sum(float(s.get("cpu_seconds", 0.0)) for s in numbers)
    return wall, cpu


def stop_stages(actors: dict[str, list[Any]]) -> None:
    if not any(actors.values()):
        return
    import ray

    try:
        ray.get([actor.shutdown.remote() for actor in actors["render"]], timeout=20)
    except Exception:  # servers also exit when their parent actor dies
        pass
    for pool in actors.values():
        for actor in pool:
            ray.kill(actor, no_restart=True)
