"""Declared randomisation: sample a distribution and write the value at a field path of a scene.

A field path is dotted from the scene root, e.g. `environment.weather.fog`,
`world.params.tree_density`, `camera.start.position.0` (list indices are numbers). The first
component picks the sub-seed (world, camera, motion, environment); each path has its own stream
(`seeds.field_seed`), so draws never depend on which other fields are randomised.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

from contract.manifest.schema import Distribution

_MISSING = object()


def split_path(path: str) -> list[str | int]:
    return [int(part) if part.isdigit() else part for part in path.split(".")]


def get_path(data: Any, path: str, default: Any = _MISSING) -> Any:
    """The value at `path`; raises KeyError naming the first missing component (unless a default is given)."""
    node = data
    walked: list[str] = []
    for part in split_path(path):
        walked.append(str(part))
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            if default is not _MISSING:
                return default
            raise KeyError(".".join(walked))
    return node


def set_path(data: Any, path: str, value: Any) -> None:
    parts = split_path(path)
    parent = get_path(data, ".".join(str(p) for p in parts[:-1])) if len(parts) > 1 else data
    last = parts[-1]
    if isinstance(parent, dict) and isinstance(last, str) and last in parent:
        parent[last] = value
    elif isinstance(parent, list) and isinstance(last, int) and 0 <= last < len(parent):
        parent[last] = value
    else:
        raise KeyError(path)


def is_integer_target(current: Any) -> bool:
    return isinstance(current, int) and not isinstance(current, bool)


def is_numeric_target(current: Any) -> bool:
    return current is None or (isinstance(current, (int, float)) and not isinstance(current, bool))


def sample(distribution: Distribution, generator: np.random.Generator, current: Any) -> Any:
    """One draw, typed like the field it replaces (whole numbers for integer fields)."""
    kind = distribution.kind()
    if kind == "uniform":
        low, high = distribution.uniform  # type: ignore[misc]
        if is_integer_target(current):
            return int(generator.integers(int(low), int(high) + 1))
        return float(generator.uniform(low, high))
    if kind == "choice":
        options = distribution.choice or []
        weights = distribution.weights
        if weights is None:
            index = int(generator.integers(0, len(options)))
        else:
            probabilities = np.asarray(weights, dtype=np.float64)
            index = int(generator.choice(len(options), p=probabilities / probabilities.sum()))
        return copy.deepcopy(options[index])
    spec = distribution.normal
    assert spec is not None
    value = float(generator.normal(spec.mean, spec.std))
    if spec.min is not None:
        value = max(spec.min, value)
    if spec.max is not None:
        value = min(spec.max, value)
    return int(round(value)) if is_integer_target(current) else value


def extreme_values(distribution: Distribution, current: Any) -> list[tuple[tuple[str | int, ...], Any]]:
    """(where in the distribution, value) pairs at its edges; validating them catches bad bounds up front."""
    kind = distribution.kind()
    if kind == "uniform":
        low, high = distribution.uniform  # type: ignore[misc]
        cast = int if is_integer_target(current) else float
        return [(("uniform", 0), cast(low)), (("uniform", 1), cast(high))]
    if kind == "choice":
        return [(("choice", index), option) for index, option in enumerate(distribution.choice or [])]
    spec = distribution.normal
    assert spec is not None
    named = [("mean", spec.mean), ("min", spec.min), ("max", spec.max)]
    cast_value = (lambda v: int(round(v))) if is_integer_target(current) else float
    return [(("normal", name), cast_value(value)) for name, value in named if value is not None]
