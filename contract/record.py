"""The sample record: a sample's JSON member and its index row, built in one place.

Why one builder: generate and curate used to assemble this document each in their own code,
and the copies drifted (`encode` was described two ways; `renderer` carried `protocol_version`
in one and `server_id` in the other). Readers (the training loader, `worldloom inspect`,
select/mix, eval) see one field set; `SampleRecord` is that field set, typed, and
`SampleRecord.document` / `SampleRecord.index_row` are how every writer produces it.

Shared fields have the same names and shapes for both sources. Where a rendered clip and a
real clip legitimately differ, the `source` discriminator (`"synthetic"` | `"real"`, also an
index column) decides, through the record's `origin`:

- `SyntheticOrigin` (generate): `action_keys` and `resolved_clip` (the index's `params_json`).
- `RealOrigin` (curate): `origin` (the index's `params_json`: where in which file the clip
  came from), `caption_source`, `black_stretches`, and `has_poses` / `has_actions` / `absent`
  (a real clip has no camera or action members).

Generate's layout is the canonical one: `tests/test_quickstart_digest.py` holds its bytes.
Values pass through unchanged (no rounding, no re-typing beyond what generate always wrote), so
the same inputs give the same bytes.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from contract.sample import ABSENT_IN_REAL_CLIPS, ACTION_KEYS, JSON, UNITS

Source = Literal["synthetic", "real"]
SYNTHETIC: Source = "synthetic"
REAL: Source = "real"

#: Units of the fields only a real clip's record has.
REAL_UNITS: dict[str, str] = {
    "black_stretches": "source frame ranges [start, end)",
    "origin.start_s": "seconds from the first frame",
}

#: The index row's columns a record fills (docs/shard-schema.md); `score_names` and
#: `member_sha256` are added by the index and the shard writer.
INDEX_ROW_FIELDS: tuple[str, ...] = (
    "key", "status", "shard", "reason", "error", "attempts", "caption", "source", "domain",
    "manifest_name", "manifest_sha256", "resolved_sha256", "scene", "clip_index", "frames", "width",
    "height", "fps", "renderer", "params_json", "scores", "embedding",
)

#: Fields of the JSON member every sample has, whatever its source.
SHARED_DOCUMENT_FIELDS: tuple[str, ...] = (
    "key", "source", "domain", "caption", "scores", "reason", "manifest_name", "manifest_sha256",
    "resolved_sha256", "scene", "clip_index", "seeds", "fps", "width", "height", "frames", "renderer",
    "encode", "clip_model", "units", "members",
)


@dataclass(frozen=True)
class Renderer:
    """What made the pixels. A real clip's backend is `"real"` with no engine or protocol."""

    backend: str
    engine_version: str = ""
    protocol_version: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"backend": self.backend, "engine_version": self.engine_version,
                "protocol_version": self.protocol_version}

    @property
    def label(self) -> str:
        """The index's `renderer` column: backend and engine version in one string."""
        return f"{self.backend} {self.engine_version}".strip()


@dataclass(frozen=True)
class SyntheticOrigin:
    """A rendered clip: its ResolvedClip is both its provenance and its `params_json`."""

    source: ClassVar[Source] = SYNTHETIC
    resolved_clip: Mapping[str, Any]

    @property
    def params(self) -> Mapping[str, Any]:
        return self.resolved_clip

    def document_fields(self) -> dict[str, Any]:
        return {"action_keys": list(ACTION_KEYS), "resolved_clip": self.resolved_clip}


@dataclass(frozen=True)
class RealOrigin:
    """A curated clip: the source file and frame range (`params`), and what only footage has."""

    source: ClassVar[Source] = REAL
    params: Mapping[str, Any]
    caption_source: str
    black_stretches: Sequence[Sequence[int]] = ()

    def document_fields(self) -> dict[str, Any]:
        return {"origin": self.params, "caption_source": self.caption_source,
                "black_stretches": [list(s) for s in self.black_stretches],
                "has_poses": False, "has_actions": False, "absent": list(ABSENT_IN_REAL_CLIPS)}


@dataclass(frozen=True)
class SampleRecord:
    """Everything a sample's JSON member and index row say about one clip."""

    key: str
    origin: SyntheticOrigin | RealOrigin
    domain: str
    caption: str
    scene: str
    clip_index: int
    fps: float
    width: int
    height: int
    frames: int
    renderer: Renderer
    encode: Mapping[str, Any]                       # the encoder's settings (`EncodeSettings.describe()`)
    resolved_sha256: str                            # synthetic: the ResolvedClip's hash; real: the file's
    manifest_name: str = ""
    manifest_sha256: str = ""
    seeds: Mapping[str, Any] = field(default_factory=dict)
    scores: Mapping[str, float | None] = field(default_factory=dict)
    clip_model: Mapping[str, Any] | None = None     # the CLIP model that made `clip.npy`, None without one
    units: Mapping[str, str] = field(default_factory=lambda: dict(UNITS))

    @property
    def source(self) -> Source:
        return self.origin.source

    def document(self, members: Sequence[str]) -> dict[str, Any]:
        """The JSON member of a kept sample; `members` are the other members, in write order."""
        return {
            "key": self.key, "source": self.source, "domain": self.domain, "caption": self.caption,
            "scores": dict(self.scores), "reason": "",
            "manifest_name": self.manifest_name, "manifest_sha256": self.manifest_sha256,
            "resolved_sha256": self.resolved_sha256, "scene": self.scene, "clip_index": self.clip_index,
            "seeds": self.seeds, "fps": self.fps, "width": self.width, "height": self.height,
            "frames": self.frames, "renderer": self.renderer.as_dict(), "encode": dict(self.encode),
            "clip_model": None if self.clip_model is None else dict(self.clip_model),
            "units": dict(self.units), "members": [JSON, *[m for m in members if m != JSON]],
            **self.origin.document_fields(),
        }

    def index_row(self, *, status: str, reason: str = "", shard: str = "", attempts: int = 1,
                  embedding: Sequence[float] = ()) -> dict[str, Any]:
        """The index row of a kept or rejected clip (`member_sha256` is added once it is written)."""
        return {
            "key": self.key, "status": status, "shard": shard, "reason": reason, "error": "",
            "attempts": attempts, "caption": self.caption, "source": self.source, "domain": self.domain,
            "manifest_name": self.manifest_name, "manifest_sha256": self.manifest_sha256,
            "resolved_sha256": self.resolved_sha256, "scene": self.scene, "clip_index": self.clip_index,
            "frames": self.frames, "width": self.width, "height": self.height, "fps": self.fps,
            "renderer": self.renderer.label, "params_json": self.origin.params, "scores": dict(self.scores),
            "embedding": list(embedding),
        }
