"""Expand manifests into clip tasks with deterministic keys, in key order, lazily.

Keys come from the resolved clips (`<manifest_sha256[:12]>_<scene>_<clip_index:05d>`, see
docs/architecture.md). Tasks come in key order so the order (and therefore shard layout)
does not depend on the order manifests were given on the command line.

Why lazily: `clips: 1000000` is a valid manifest, and resolving a clip costs ~25 KB and ~1 ms.
`plan_manifests` validates and hashes each manifest without resolving a clip; `iter_tasks`
computes keys from (manifest hash, scene, index) alone, merges them into key order with a
heap over a few sorted runs (memory O(scenes)), and resolves a clip only when the scheduler
pulls it. A million-clip manifest starts rendering at once and the driver holds only the clips
in flight.
"""
from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.errors import UserError


@dataclass
class ClipTask:
    key: str
    clip: dict[str, Any]          # the ResolvedClip
    manifest_path: str
    order: int = 0                # position in key order: the writer's sequence number
    attempts: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class ManifestInfo:
    path: str
    name: str
    sha256: str                   # the manifest's own hash (the key prefix)
    resolved_sha256: str          # covers the manifest hash and every resolved clip hash
    resolved: dict[str, str]      # key -> resolved clip sha256
    backend: str = "procedural"   # renderer.backend of the manifest
    endpoints: tuple[str, ...] = ()  # renderer.endpoints of the manifest
    manifest: Any = None          # the validated Manifest (resolves clips on demand)
    scenes: dict[str, int] = field(default_factory=dict)  # scene name -> clips, in manifest order
    clips: int = 0                # clips in the manifest

    def key_prefix(self) -> str:
        return self.sha256[:12]

    def owns(self, key: str) -> bool:
        """Whether `key` names a clip of this manifest (no resolution needed)."""
        if not key.startswith(self.key_prefix() + "_"):
            return False
        scene, _, index = key[13:].rpartition("_")
        return scene in self.scenes and index.isdigit() and len(index) >= 5 and \
            int(index) < self.scenes[scene] and f"{int(index):05d}" == index


def plan_manifests(paths: list[Path]) -> list[ManifestInfo]:
    """Validate and hash every manifest, without resolving a single clip.

    Refuses two manifests that would produce the same key (the same manifest twice, or two
    manifests with equal hashes and a common scene name).
    """
    from contract.manifest import load_manifest, manifest_sha256

    infos: list[ManifestInfo] = []
    seen: dict[tuple[str, str], str] = {}
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise UserError(f"{path}: manifest not found", hint="pass the path of a scene manifest YAML")
        manifest = load_manifest(path)
        sha = manifest_sha256(manifest)
        scenes = {scene.name: int(scene.clips) for scene in manifest.scenes}
        for scene in scenes:
            if (sha[:12], scene) in seen:
                from contract.manifest import clip_key

                raise UserError(
                    f"{path}: clip key {clip_key(sha, scene, 0)} is also produced by {seen[(sha[:12], scene)]}",
                    hint="pass each manifest once, or give the scenes different names",
                )
            seen[(sha[:12], scene)] = str(path)
        renderer = getattr(manifest, "renderer", None)
        infos.append(ManifestInfo(path=str(path), name=str(getattr(manifest, "name", "") or path.stem), sha256=sha,
                                  resolved_sha256="", resolved={},
                                  backend=str(getattr(renderer, "backend", "procedural")),
                                  endpoints=tuple(getattr(renderer, "endpoints", ()) or ()),
                                  manifest=manifest, scenes=scenes, clips=sum(scenes.values())))
    return infos


def _scene_keys(info_index: int, info: ManifestInfo, scene: str, clips: int) -> list[Iterator[tuple[str, int, str, int]]]:
    """Sorted runs of (key, manifest number, scene, clip index): one per index width.

    `f"{i:05d}"` is zero-padded to 5 digits, so indices 0..99999 sort numerically and so do
    100000..999999 among themselves, but the two runs interleave as strings ("10000" < "100000"
    < "10001"); the heap merge puts them in string order.
    """
    from contract.manifest import clip_key

    runs = []
    low = 0
    for high in (100_000, 1_000_000, 10_000_000):
        if low >= clips:
            break
        stop = min(clips, high)
        runs.append((clip_key(info.sha256, scene, i), info_index, scene, i) for i in range(low, stop))
        low = stop
    return runs


def iter_keys(infos: list[ManifestInfo]) -> Iterator[tuple[str, int, str, int]]:
    """Every (key, manifest number, scene, clip index) in key order, nothing resolved."""
    runs = [run for number, info in enumerate(infos) for scene, clips in info.scenes.items()
            for run in _scene_keys(number, info, scene, clips)]
    return heapq.merge(*runs, key=lambda item: item[0])


def iter_tasks(infos: list[ManifestInfo], *, skip: Callable[[str], bool] | None = None) -> Iterator[ClipTask]:
    """Clip tasks in key order, each resolved only when pulled; keys for which `skip` is true are not resolved."""
    from contract.manifest import resolve_clip

    order = 0
    for key, number, scene, index in iter_keys(infos):
        if skip is not None and skip(key):
            continue
        info = infos[number]
        clip = resolve_clip(info.manifest, scene, index)
        if clip["key"] != key:  # the key formula is the manifest module's; a mismatch is a bug, not bad input
            raise RuntimeError(f"resolved key {clip['key']} differs from the planned key {key}")
        yield ClipTask(key=key, clip=clip, manifest_path=info.path, order=order)
        order += 1


def expand_manifests(paths: list[Path]) -> tuple[list[ClipTask], list[ManifestInfo]]:
    """Every task, resolved eagerly, plus each manifest's resolved hashes (small manifests, tests)."""
    from contract.manifest import clip_sha256

    infos = plan_manifests(paths)
    tasks = list(iter_tasks(infos))
    for task in tasks:
        info = next(info for info in infos if info.owns(task.key))
        info.resolved[task.key] = task.clip.get("sha256") or clip_sha256(task.clip)
    for info in infos:
        info.resolved_sha256 = resolved_manifest_sha256(info, info.resolved)
    return tasks, infos


def resolved_manifest_sha256(info: ManifestInfo, clip_hashes: dict[str, str]) -> str:
    """`ResolvedManifest.sha256` from the clip hashes (manifest order); "" when a clip is missing."""
    import hashlib

    from contract.manifest import canonical_json, clip_key

    ordered = []
    for scene, clips in info.scenes.items():
        for index in range(clips):
            digest = clip_hashes.get(clip_key(info.sha256, scene, index))
            if not digest:
                return ""
            ordered.append(digest)
    text = canonical_json({"manifest_sha256": info.sha256, "clips": ordered})
    return hashlib.sha256(text.encode()).hexdigest()


def render_endpoints(infos: list[ManifestInfo], command_line: list[str]) -> list[str]:
    """Endpoints to render on: the command line's, else those the manifests list.

    A manifest for the Unreal backend cannot fall back to procedural servers: the procedural
    renderer cannot load an Unreal level, so that is a user error to fix before anything runs.
    """
    if command_line:
        return list(command_line)
    endpoints: list[str] = []
    for info in infos:
        endpoints.extend(e for e in info.endpoints if e not in endpoints)
    if not endpoints:
        for info in infos:
            if info.backend == "unreal":
                raise UserError(
                    f"{info.path}: renderer.backend is unreal but no render endpoint is given",
                    hint="start the Unreal render server (docs/unreal.md) and list it under renderer.endpoints "
                         "or pass --endpoint HOST:PORT",
                )
    return endpoints
