"""An OpenSessionRequest -> one ResolvedClip (document and typed view), or a one-line UserError.

Requests are untrusted input: the manifest text is resolved by `contract.manifest` (the one
place that knows the schema), a resolved clip sent as JSON is checked field by field by
`contract.clip.ResolvedClip.parse`, and its stated sha256 must match its content. The servicer
runs this on its own small pool, with size and time limits (unreal_bridge/server.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from contract.clip import ResolvedClip
from contract.errors import UserError
from unreal_bridge.protos.worldloom.render.v1 import render_pb2 as pb


@dataclass(frozen=True)
class OpenedClip:
    """What a request resolves to: the JSON document (sent back to the client, hashed) and its
    typed view (read by the servicer and the backend)."""

    document: dict[str, Any]
    clip: ResolvedClip


def resolve_request(request: pb.OpenSessionRequest) -> OpenedClip:
    """Turn an OpenSessionRequest into one resolved clip, raising UserError on bad input."""
    source = request.WhichOneof("source")
    if source is None:
        raise UserError("OpenSession needs manifest_yaml or resolved_clip_json; neither was given")
    from contract import manifest as manifests  # lazy: keeps `import unreal_bridge.server` light

    if source == "resolved_clip_json":
        try:
            document = json.loads(request.resolved_clip_json)
            clip = ResolvedClip.parse(document, source="resolved_clip_json")  # every field checked before hashing
        except json.JSONDecodeError as error:
            raise UserError(f"resolved_clip_json is not valid JSON (line {error.lineno}: {error.msg})") from None
        except RecursionError:  # hostile nesting: refuse it as bad input, not a server fault
            raise UserError("resolved_clip_json nests too deeply; a resolved clip is a few levels deep: "
                            "send what `worldloom manifest resolve` wrote") from None
        stated = document.get("sha256")
        try:
            actual = manifests.clip_sha256(document)
        except ValueError:  # NaN or infinity somewhere the typed view does not read
            raise UserError("resolved_clip_json holds NaN or Infinity; a resolved clip is plain finite JSON: re-resolve it") from None
        if stated and stated != actual:
            raise UserError(
                f"resolved_clip_json field 'sha256' is {stated[:12]}… but the content hashes to {actual[:12]}…; "
                "the clip was edited after resolving: re-resolve it or drop the sha256 field"
            )
        document = dict(document, sha256=actual)
        return OpenedClip(document, replace(clip, sha256=actual, document=MappingProxyType({**clip.document, "sha256": actual})))
    # Always text, never a path: a one-line "x.yaml" must not make the server read its own files.
    text = request.manifest_yaml if "\n" in request.manifest_yaml else request.manifest_yaml + "\n"
    loaded = manifests.load_manifest(text, source_name="<manifest_yaml>")
    scenes = [scene.name for scene in loaded.scenes]
    scene = request.scene or scenes[0]
    if scene not in scenes:
        raise UserError(f"scene {scene!r} is not in the manifest; choose one of {', '.join(scenes)}")
    document = manifests.resolve_clip(loaded, scene, int(request.clip_index))
    return OpenedClip(document, ResolvedClip.parse(document, source="<manifest_yaml>"))
