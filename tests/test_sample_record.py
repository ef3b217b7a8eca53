"""One sample-record writer (issue 10): generate and curate build the JSON member and the index
row through `contract.record.SampleRecord`, so the fields they share have the same names and shapes.

The records are built by the real code paths (generate's `process_clip` and `record_for_outcome`,
curate's `clip_record`) on small inputs, without Ray or a render server.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contract.record import INDEX_ROW_FIELDS, REAL, SHARED_DOCUMENT_FIELDS, SYNTHETIC, SampleRecord
from contract.sample import CLIP_EMBEDDING, JSON, MP4

EXAMPLES = Path(__file__).resolve().parents[1] / "manifests" / "examples"
SYNTHETIC_ONLY = {"action_keys", "resolved_clip"}
REAL_ONLY = {"origin", "caption_source", "black_stretches", "has_poses", "has_actions", "absent"}


def _generate_record() -> SampleRecord:
    from contract.clip import ResolvedClip
    from contract.manifest import resolve_manifest
    from pipeline.generate.config import GenerateConfig
    from pipeline.generate.process import RenderedPayload, encode_settings_for, process_clip
    from pipeline.generate.records import record_for_outcome

    clip = resolve_manifest(EXAMPLES / "quickstart.yaml").clips[0]
    typed = ResolvedClip.parse(clip)
    actions, poses = typed.actions, typed.poses
    frames = len(actions)
    rgb = np.random.default_rng(0).integers(0, 255, (frames, 16, 16, 3), dtype=np.uint8)
    payload = RenderedPayload(key=clip["key"], resolved_clip=clip, resolved_sha256=clip["sha256"], rgb=rgb,
                              camera_to_world=poses, intrinsics=np.eye(3), actions=actions,
                              renderer={"backend": "procedural", "engine_version": "pybullet 3",
                                        "protocol_version": "1.0"})
    processed = process_clip(payload, encode_settings_for(clip, None, None, "veryfast"))
    embedding = {"embedding": np.ones(4, np.float32) / 2, "clip_text_similarity": 0.25}
    return record_for_outcome(processed, embedding, GenerateConfig())[0]


def _curate_record() -> SampleRecord:
    from pipeline.curate.config import CurateConfig
    from pipeline.curate.finalise import clip_record
    from pipeline.curate.process import CuratedClip, InputResult

    result = InputResult(uri="/videos/walk.mp4", sha256="ab" * 32, scene="walk",
                         probe={"width": 64, "height": 48, "fps": 24.0, "codec": "h264"})
    clip = CuratedClip(key="abababababab_walk_00000", clip_index=0, start_frame=0, end_frame=24, start_s=0.0,
                       end_s=1.0, frames=24, width=64, height=48, fps=24.0, mp4=b"", scores={"sharpness": 3.0},
                       caption="a walk", caption_source="sidecar", embedding=[0.5, 0.5], black_stretches=[(2, 4)])
    return clip_record(result, clip, domain="real", config=CurateConfig(),
                       clip_model={"name": "ViT-B-32", "weights": "random-init(seed=0)"},
                       extra_params={"caption_source": "sidecar"})


@pytest.fixture(scope="module")
def records() -> tuple[SampleRecord, SampleRecord]:
    return _generate_record(), _curate_record()


def test_generate_and_curate_documents_share_every_common_field(records) -> None:
    generated, curated = records
    assert (generated.source, curated.source) == (SYNTHETIC, REAL)
    synthetic = generated.document([MP4, CLIP_EMBEDDING])
    real = curated.document([MP4, CLIP_EMBEDDING])
    assert set(synthetic) - SYNTHETIC_ONLY == set(real) - REAL_ONLY == set(SHARED_DOCUMENT_FIELDS)
    assert set(synthetic) & REAL_ONLY == set() and set(real) & SYNTHETIC_ONLY == set()
    # the nested descriptions are one shape too (they used to differ: server_id vs protocol_version, two encodes)
    assert set(synthetic["renderer"]) == set(real["renderer"]) == {"backend", "engine_version", "protocol_version"}
    assert set(synthetic["encode"]) == set(real["encode"])
    assert set(synthetic["clip_model"]) == set(real["clip_model"]) == {"name", "weights"}
    for name in SHARED_DOCUMENT_FIELDS:
        assert type(synthetic[name]) is type(real[name]), name
    assert synthetic["members"] == real["members"] == [JSON, MP4, CLIP_EMBEDDING]
    assert real["has_poses"] is False and real["has_actions"] is False


def test_generate_and_curate_index_rows_have_the_same_columns(records) -> None:
    from pipeline.generate.records import failed_row
    from pipeline.generate.tasks import ClipTask
    from pipeline.shards.index import INDEX_BASE_COLUMNS

    generated, curated = records
    synthetic = generated.index_row(status="kept", embedding=[0.5])
    real = curated.index_row(status="kept", embedding=[0.5])
    task = ClipTask(key=generated.key, clip=dict(generated.origin.params), manifest_path="m.yaml", attempts=3)
    failed = failed_row(task, "render: boom")
    assert list(synthetic) == list(real) == list(failed) == list(INDEX_ROW_FIELDS)
    # `scores` becomes one column per score; `score_names` and `member_sha256` are the writers'
    assert set(INDEX_ROW_FIELDS) - {"scores"} | {"score_names", "member_sha256"} == set(INDEX_BASE_COLUMNS)
    assert (synthetic["renderer"], real["renderer"]) == ("procedural pybullet 3", "real")
    assert (synthetic["source"], real["source"], failed["source"]) == ("synthetic", "real", "synthetic")
    assert failed["status"] == "failed" and failed["error"] == "render: boom" and failed["attempts"] == 3


def test_the_record_keeps_what_the_driver_adds(records) -> None:
    generated, curated = records
    assert generated.scores["clip_text_similarity"] == 0.25
    assert generated.clip_model == {"name": "ViT-B-32", "weights": "random-init(seed=0)"}
    assert curated.scores["caption_is_placeholder"] == 0.0
    assert curated.document([MP4])["black_stretches"] == [[2, 4]]
    assert curated.document([MP4])["origin"]["uri"] == "/videos/walk.mp4"
