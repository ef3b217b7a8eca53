"""The generate configuration (pydantic): defaults, YAML loading, one-line errors."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contract.errors import UserError
from pipeline.quality import ThresholdsConfig  # shared with curate: one thresholds model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EncodeConfig(_Strict):
    crf: int | None = Field(None, ge=0, le=51, description="None: the resolved clip's output.crf")
    gop: int | None = Field(None, ge=1, description="None: the resolved clip's output.gop")
    preset: str = "veryfast"


class ClipConfig(_Strict):
    enabled: bool = True
    model: str = "ViT-B-32"
    weights: str | None = None
    frames: int = Field(4, ge=1)
    text_similarity: bool = True
    seed: int = 0


class StageResources(_Strict):
    """CPUs each stage actor declares to Ray (fractions allowed)."""

    render_local: float = Field(1.0, gt=0, description="a render actor with its own procedural server")
    render_remote: float = Field(0.25, gt=0, description="a render actor streaming from a remote endpoint")
    process: float = Field(0.5, gt=0, description="encode + scores + caption")
    embed: float = Field(0.5, gt=0, description="CLIP embedding")


class MlflowConfig(_Strict):
    enabled: bool = True
    tracking_uri: str | None = None   # default sqlite:///<out>/mlflow.db; MLFLOW_TRACKING_URI overrides
    experiment: str = "worldloom-generate"


class GenerateConfig(_Strict):
    out: Path | None = None
    shard_max_bytes: int = Field(500_000_000, ge=1)
    thresholds: ThresholdsConfig = ThresholdsConfig()
    encode: EncodeConfig = EncodeConfig()
    clip: ClipConfig = ClipConfig()
    resources: StageResources = StageResources()
    mlflow: MlflowConfig = MlflowConfig()
    workers: int | None = Field(None, ge=1,
                                description="procedural render servers; default one per CPU the light stages leave")
    process_workers: int = Field(1, ge=1)
    embed_workers: int = Field(1, ge=1)
    retries: int = Field(2, ge=0, description="extra render attempts per clip")
    endpoints: list[str] = []
    auth_token: str | None = Field(default_factory=lambda: os.environ.get("WORLDLOOM_AUTH_TOKEN") or None,
                                   exclude=True, repr=False,  # a secret: never in dataset.json or MLflow
                                   description="token for render servers bound beyond loopback; "
                                               "default $WORLDLOOM_AUTH_TOKEN")
    ray_address: str | None = None
    local_ray_cpus: int | None = Field(None, ge=1,
                                       description="CPUs of a Ray started by generate; default os.cpu_count()")
    passes: list[str] | None = None   # None: the passes each resolved clip asks for
    render_queue: int = Field(2, ge=1, description="clips queued per render actor (1 rendering + backlog)")
    client_idle_timeout_s: float = 30.0
    client_connect_timeout_s: float = 5.0
    client_max_retries: int = Field(1, ge=0,
                                    description="in-clip reconnects by the gRPC client before the clip is retried")
    overwrite: bool = False
    progress: bool = True

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, value: list[str]) -> list[str]:
        for endpoint in value:
            host, _, port = endpoint.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"endpoint {endpoint!r} must be HOST:PORT")
        return value


def load_generate_config(path: Path | None, overrides: dict[str, Any] | None = None) -> GenerateConfig:
    """Config from a YAML file (optional) plus command-line overrides; errors name file and field."""
    data: dict[str, Any] = {}
    name = "generate config"
    if path is not None:
        path = Path(path)
        name = str(path)
        if not path.exists():
            raise UserError(f"{path}: config file not found", hint="pass an existing --config YAML or omit it")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise UserError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
        if not isinstance(loaded, dict):
            raise UserError(f"{path}: the config must be a mapping of fields, got {type(loaded).__name__}")
        data.update(loaded)
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
    try:
        return GenerateConfig.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(root)"
        raise UserError(f"{name}: field {field}: {first['msg']}",
                        hint="see docs/generate.md for the config fields") from None
