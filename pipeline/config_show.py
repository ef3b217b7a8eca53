"""`worldloom config show train|generate|curate [CONFIG] [--set KEY=VALUE ...]`.

Prints a config as YAML with every field, its value and its description as a comment, straight
from the typed config classes: the printout cannot drift from what the loaders accept, and a
user can redirect it into a file, edit it and pass it back (`--config` / `worldloom train`).
Without CONFIG it prints the defaults (required fields marked); with one, the resolved config.
"""
from __future__ import annotations

import json
import types
import typing
from typing import Any

import click
import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

KINDS = ("train", "generate", "curate")


def _model_class(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside `X`, `X | None` or `Optional[X]`, else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for argument in typing.get_args(annotation):
            found = _model_class(argument)
            if found is not None:
                return found
    return None


def _scalar(value: Any) -> str:
    """One YAML value on one line (flow style for lists and mappings)."""
    if isinstance(value, tuple):
        value = list(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _default(field: Any) -> Any:
    if field.default is not PydanticUndefined:
        return field.default
    if field.default_factory is not None:
        return field.default_factory()
    return PydanticUndefined


def commented_yaml(cls: type[BaseModel], values: dict[str, Any] | None = None, indent: int = 0) -> list[str]:
    """YAML lines for `cls`: `values` (a model_dump) where given, else each field's default."""
    lines: list[str] = []
    pad = "  " * indent
    for name, field in cls.model_fields.items():
        description = " ".join((field.description or "").split())
        if values is not None and name in values:
            value = values[name]
        else:
            value = _default(field)
            if isinstance(value, BaseModel):
                value = value.model_dump(mode="json")
        nested = _model_class(field.annotation)
        comment = f"  # {description}" if description else ""
        if value is PydanticUndefined:
            lines.append(f"{pad}{name}:{'  # REQUIRED' + (': ' + description if description else '')}")
        elif nested is not None and isinstance(value, dict):
            lines.append(f"{pad}{name}:{comment}")
            lines.extend(commented_yaml(nested, value, indent + 1))
        else:
            lines.append(f"{pad}{name}: {_scalar(json.loads(json.dumps(value, default=str)))}{comment}")
    return lines


def _train(config: str | None, sets: tuple[str, ...]) -> tuple[type[BaseModel], dict | None, str]:
    from training.config import TrainConfig, find_config, load_train_config, parse_set_options, with_overrides

    if config is None:
        if sets:
            raise click.UsageError("--set needs a CONFIG to apply to (e.g. `worldloom config show train tiny_vae`)")
        return TrainConfig, None, "defaults of every training config (docs/training.md)"
    path = find_config(config)
    loaded = with_overrides(load_train_config(path), "--set", **parse_set_options(sets))
    return TrainConfig, loaded.model_dump(mode="json"), f"{path} resolved"


def _generate(config: str | None, sets: tuple[str, ...]) -> tuple[type[BaseModel], dict | None, str]:
    from pathlib import Path

    from pipeline.generate.config import GenerateConfig, load_generate_config
    from training.config import parse_set_options

    if config is None and not sets:
        return GenerateConfig, None, "defaults of `worldloom generate --config` (docs/generate.md)"
    overrides = parse_set_options(sets)
    loaded = load_generate_config(Path(config) if config else None, {})
    merged = _merge(loaded.model_dump(mode="json"), overrides)
    return GenerateConfig, GenerateConfig.model_validate(merged).model_dump(mode="json"), f"{config or 'defaults'} resolved"


def _curate(config: str | None, sets: tuple[str, ...]) -> tuple[type[BaseModel], dict | None, str]:
    from pipeline.curate.config import CurateConfig, load_curate_config
    from training.config import parse_set_options

    if config is None and not sets:
        return CurateConfig, None, "defaults of `worldloom curate --config` (docs/curate.md)"
    merged = _merge(load_curate_config(config).model_dump(mode="json"), parse_set_options(sets))
    return CurateConfig, CurateConfig.model_validate(merged).model_dump(mode="json"), f"{config or 'defaults'} resolved"


def _merge(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    from training.config import set_dotted

    for dotted, value in overrides.items():
        set_dotted(data, dotted, value, "--set")
    return data


@click.group("config")
def config_group() -> None:
    """Show configs with every field and its meaning."""


@config_group.command("show")
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("config", required=False)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="dotted override, e.g. optim.lr=1e-4 (repeatable)")
def show(kind: str, config: str | None, sets: tuple[str, ...]) -> None:
    """Print the KIND config as commented YAML: the defaults, or CONFIG (a file or packaged name) resolved."""
    cls, values, title = {"train": _train, "generate": _generate, "curate": _curate}[kind](config, sets)
    click.echo(f"# worldloom {kind} config: {title}")
    click.echo("\n".join(commented_yaml(cls, values)))
