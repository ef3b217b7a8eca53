"""`worldloom generate`: scene manifests -> rendered, encoded, scored, captioned, embedded clips
-> WebDataset shards + Parquet index + dataset.json. See docs/generate.md.

The recipe lives in `run.py`; the Ray stages in `stages.py`; per-clip processing (pure
functions, testable without Ray) in `process.py`.
"""
from pipeline.generate.config import GenerateConfig, load_config
from pipeline.generate.run import GenerateResult, run_generate

__all__ = ["GenerateConfig", "load_config", "GenerateResult", "run_generate"]
