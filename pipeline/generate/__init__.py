"""`worldloom generate`: scene manifests -> rendered, encoded, scored, captioned, embedded clips
-> WebDataset shards + Parquet index + dataset.json. See docs/generate.md.

The recipe lives in `run.py`; the Ray stages in `stages.py`, their pools in `pools.py`, the
in-flight loop with retries in `scheduler.py`; per-clip processing (pure functions, testable
without Ray) in `process.py`; rows, sample members and dataset.json in `records.py`.
"""
from pipeline.generate.config import GenerateConfig, load_generate_config
from pipeline.generate.run import GenerateResult, run_generate

__all__ = ["GenerateConfig", "load_generate_config", "GenerateResult", "run_generate"]
