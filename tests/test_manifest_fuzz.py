"""Hypothesis-generated broken manifests: always a one-line UserError naming the field, never another exception."""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.errors import UserError
from contract.manifest import load_manifest, resolve_manifest
from contract.manifest.loader import format_loc

REPO = Path(__file__).resolve().parents[1]
BASES = {name: yaml.safe_load((REPO / "manifests" / "examples" / f"{name}.yaml").read_text()) for name in ("quickstart", "physics_sandbox", "city_drive")}
# Fixed examples in the suite; WORLDLOOM_FUZZ_EXAMPLES=5000 explores randomly for a deeper run.
_DEEP = int(os.environ.get("WORLDLOOM_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_DEEP or 60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=not _DEEP)


def leaves(node: Any, path: tuple = ()) -> list[tuple]:
    """Paths to every scalar (or list of scalars) in a YAML document."""
    if isinstance(node, dict):
        return [leaf for key, value in node.items() for leaf in leaves(value, (*path, key))]
    if isinstance(node, list) and node and any(isinstance(item, (dict, list)) for item in node):
        return [leaf for index, value in enumerate(node) for leaf in leaves(value, (*path, index))]
    return [path]


def mappings(node: Any, path: tuple = ()) -> list[tuple]:
    found = [path] if isinstance(node, dict) else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += mappings(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += mappings(value, (*path, index))
    return found


def set_at(data: Any, path: tuple, value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


def delete_at(data: Any, path: tuple) -> None:
    for part in path[:-1]:
        data = data[part]
    del data[path[-1]]


def expected_field(path: tuple) -> str:
    """How the error names the field: dotted path; the world's generator is reported at the world."""
    return format_loc(path)


def load_error(data: Any) -> str:
    text = yaml.safe_dump(data, sort_keys=False)
    with pytest.raises(UserError) as caught:
        load_manifest(text, source_name="fuzz.yaml")
    message = caught.value.one_line()
    assert "\n" not in message and message.startswith("fuzz.yaml") and "fix:" in message
    return message


# Values that are wrong for every leaf of the examples: no field is a mapping, and none takes arbitrary mappings.
WRONG_VALUES = st.one_of(
    st.dictionaries(st.sampled_from(["zz", "oops"]), st.integers(), min_size=1, max_size=2),
    st.just({"nested": {"deeper": [1, 2]}}),
)


@FUZZ
@given(base=st.sampled_from(sorted(BASES)), data=st.data(), wrong=WRONG_VALUES)
def test_wrong_value_at_any_leaf_names_that_field(base: str, data: st.DataObject, wrong: Any) -> None:
    document = copy.deepcopy(BASES[base])
    path = data.draw(st.sampled_from(leaves(document)))
    set_at(document, path, wrong)
    message = load_error(document)
    assert expected_field(path) in message, (path, message)


REQUIRED = [("version",), ("name",), ("seed",), ("output",), ("output", "width"), ("output", "fps"), ("output", "frames"), ("scenes",),
            ("scenes", 0, "name"), ("scenes", 0, "camera"), ("scenes", 0, "motion"), ("scenes", 0, "camera", "rig"), ("scenes", 0, "motion", "policy"),
            ("scenes", 0, "world"), ("scenes", 0, "motion", "actions")]


@FUZZ
@given(base=st.sampled_from(["quickstart", "physics_sandbox"]), path=st.sampled_from(REQUIRED))
def test_missing_required_field_is_named(base: str, path: tuple) -> None:
    document = copy.deepcopy(BASES[base])
    delete_at(document, path)
    message = load_error(document)
    assert expected_field(path) in message, (path, message)


@FUZZ
@given(base=st.sampled_from(sorted(BASES)), data=st.data(), key=st.from_regex(r"\A[a-z]{3,10}_x\Z"))
def test_unknown_key_is_named(base: str, data: st.DataObject, key: str) -> None:
    document = copy.deepcopy(BASES[base])
    path = data.draw(st.sampled_from([p for p in mappings(document) if not (p and p[-1] == "randomize")]))
    set_at(document, (*path, key), 1) if path else document.__setitem__(key, 1)
    message = load_error(document)
    assert expected_field((*path, key)) in message and "unknown field" in message, (path, message)


@FUZZ
@given(
    base=st.sampled_from(sorted(BASES)),
    data=st.data(),
    junk=st.recursive(
        st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True) | st.text(max_size=12),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
        max_leaves=6,
    ),
)
def test_any_junk_anywhere_is_valid_or_a_user_error(base: str, data: st.DataObject, junk: Any) -> None:
    """Arbitrary values at any place: either a valid manifest that resolves, or a UserError; never a crash."""
    document = copy.deepcopy(BASES[base])
    path = data.draw(st.sampled_from(leaves(document) + mappings(document)[1:]))
    set_at(document, path, junk)
    try:
        manifest = load_manifest(document, source_name="fuzz.yaml")
    except UserError as error:
        assert "fuzz.yaml" in error.one_line() and "fix:" in error.one_line()
        return
    try:
        resolve_manifest(manifest)
    except UserError as error:
        assert "fuzz.yaml" in error.one_line() and "fix:" in error.one_line()


@FUZZ
@given(text=st.text(max_size=200))
def test_any_text_is_valid_or_a_user_error(text: str) -> None:
    try:
        load_manifest(text + "\n", source_name="fuzz.yaml")
    except UserError as error:
        assert error.one_line().startswith("fuzz.yaml")


@FUZZ
@given(data=st.data())
def test_mangled_yaml_lines_are_user_errors(data: st.DataObject) -> None:
    """Delete or duplicate a line, or cut the file anywhere: a UserError naming the file (or a valid manifest)."""
    lines = (REPO / "manifests" / "examples" / "quickstart.yaml").read_text().splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    action = data.draw(st.sampled_from(["delete", "duplicate", "cut", "indent"]))
    if action == "delete":
        mangled = lines[:index] + lines[index + 1:]
    elif action == "duplicate":
        mangled = lines[: index + 1] + lines[index:]
    elif action == "cut":
        mangled = lines[:index]
    else:
        mangled = lines[:index] + ["   " + lines[index]] + lines[index + 1:]
    try:
        load_manifest("\n".join(mangled) + "\n", source_name="fuzz.yaml")
    except UserError as error:
        assert error.one_line().startswith("fuzz.yaml")
