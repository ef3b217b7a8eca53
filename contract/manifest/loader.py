"""YAML -> `Manifest`, with every error reported as `file:line: field.path: problem; fix: ...`.

The YAML is composed into a node tree first (which keeps line numbers) and then constructed,
so a pydantic error location can be walked back to the line that holds the bad value. Anything
that goes wrong with user input becomes a `UserError`; any other exception is a worldloom bug.
"""
from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from contract.errors import UserError
from contract.manifest.checks import Issue, Loc, check_manifest
from contract.manifest.schema import (
    WORLD_TAGS,
    CityWorld,
    EmptyWorld,
    ForestWorld,
    Manifest,
    PhysicsSandboxWorld,
    TerrainWorld,
    UnrealLevelWorld,
    _world_tag,
)

_WORLD_CLASSES: dict[str, type[BaseModel]] = {
    "city": CityWorld, "forest": ForestWorld, "terrain": TerrainWorld, "physics_sandbox": PhysicsSandboxWorld,
    "empty": EmptyWorld, "level": UnrealLevelWorld,
}


class SourceMap:
    """Maps a field location (('scenes', 0, 'camera', 'rig')) to its 1-based YAML line."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.root = root

    def line_of(self, loc: Loc) -> int | None:
        node = self.root
        if node is None:
            return None
        line = node.start_mark.line + 1
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                match = next(((key, value) for key, value in node.value if isinstance(key, yaml.ScalarNode) and key.value == str(part)), None)
                if match is None:
                    break
                line = match[0].start_mark.line + 1
                node = match[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                break
        return line


def format_loc(loc: Loc) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "." in part or not part:
            text += f'["{part}"]'
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


def format_issue(source: str, source_map: SourceMap | None, issue: Issue, more: int = 0) -> str:
    line = source_map.line_of(issue.loc) if source_map is not None else None
    where = f"{source}:{line}" if line is not None else source
    suffix = f" (and {more} more problem{'s' if more > 1 else ''}; fix this one first)" if more else ""
    return " ".join(f"{where}: {format_loc(issue.loc)}: {issue.problem}; fix: {issue.fix}{suffix}".split())


# --------------------------------------------------------------------------- pydantic error -> Issue


def _strip_world_tags(loc: tuple[Any, ...]) -> Loc:
    cleaned: list[str | int] = []
    skip_next = False
    for index, part in enumerate(loc):
        if skip_next:
            skip_next = False
            continue
        cleaned.append(part)
        if part == "world" and index + 1 < len(loc) and loc[index + 1] in WORLD_TAGS:
            skip_next = True
    # "function-after[...]" and similar validator names never name a user field
    return tuple(part for part in cleaned if not (isinstance(part, str) and "[" in part and part.endswith("]")))


def _next_annotation(annotation: Any, raw: Any) -> Any:
    """Unwrap Annotated/Optional/Union down to a model class (choosing the world by its tag)."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            models = [typing.get_args(m)[0] if typing.get_origin(m) is typing.Annotated else m for m in members]
            if len(models) > 1 and all(isinstance(m, type) and issubclass(m, BaseModel) for m in models):
                tag = _world_tag(raw)
                return _WORLD_CLASSES.get(tag or "", None)
            annotation = members[0] if len(members) == 1 else next((m for m in members if typing.get_origin(m) in (list, dict)), members[0])
        else:
            return annotation


def _model_at(loc: Loc, data: Any) -> type[BaseModel] | None:
    """The model class that owns the mapping at `loc`, for listing the keys allowed there."""
    current: Any = Manifest
    raw = data
    for part in loc:
        current = _next_annotation(current, raw)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) is list:
            current = typing.get_args(current)[0]
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        else:
            return None
        raw = raw.get(part) if isinstance(raw, dict) else raw[part] if isinstance(raw, list) and isinstance(part, int) and part < len(raw) else None
    current = _next_annotation(current, raw)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def short_repr(value: Any, limit: int = 60) -> str:
    """`repr(value)` cut to `limit` characters, for one-line messages that quote bad input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_TYPE_WORDS = {
    "int_type": "a whole number", "int_from_float": "a whole number", "float_type": "a number", "string_type": "text in quotes",
    "bool_type": "true or false", "list_type": "a list ([a, b] or '- item' lines)", "dict_type": "a mapping (key: value lines)",
    "model_type": "a mapping (key: value lines)", "model_attributes_type": "a mapping (key: value lines)",
    "int_parsing": "a whole number", "float_parsing": "a number", "literal_error": "one of the listed values",
}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def issue_from_pydantic(error: Mapping[str, Any], data: Any) -> Issue:
    loc = _strip_world_tags(tuple(error.get("loc", ())))
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    value = error.get("input")
    field = next((str(part) for part in reversed(loc) if isinstance(part, str)), "value")
    if kind == "worldloom_invalid":
        return Issue(loc, str(ctx.get("problem", error.get("msg"))), str(ctx.get("fix", "see docs/manifests.md")))
    if kind == "missing":
        return Issue(loc, f"required field `{field}` is missing", f"add `{field}:` (see docs/manifests.md)")
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1], data)
        allowed = sorted(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(field, allowed, n=1)
        fix = f"remove `{field}`" + (f" or rename it to `{close[0]}`" if close else "")
        fix += f" (allowed here: {', '.join(allowed)})" if allowed else ""
        return Issue(loc, f"unknown field `{field}`", fix)
    if kind == "literal_error":
        return Issue(loc, f"{short_repr(value)} is not allowed", f"use one of {ctx.get('expected', '')}")
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()), "")
        return Issue(loc, f"{short_repr(value)} is out of range", f"use a value {_BOUNDS[kind]} {bound}")
    if kind in ("too_short", "too_long"):
        lo, hi = ctx.get("min_length"), ctx.get("max_length")
        want = f"exactly {lo}" if lo == hi and lo is not None else f"at least {ctx.get('min_length')}" if kind == "too_short" else f"at most {ctx.get('max_length')}"
        return Issue(loc, f"has {ctx.get('actual_length', '?')} items", f"give {want} items")
    if kind == "string_pattern_mismatch":
        if "randomize" in loc[:-1] and loc and loc[-1] == value:
            return Issue(loc, f"{short_repr(value)} is not a field path", "write a dotted path inside the scene, e.g. environment.weather.fog or world.params.tree_density")
        hint = {"name": "lower-case letters, digits, underscores (no dots), e.g. city_day", "level": "an Unreal content path such as /Game/Maps/City"}
        return Issue(loc, f"{short_repr(value)} does not match {ctx.get('pattern')}", f"use {hint.get(field, 'a value matching that pattern')}")
    if kind == "string_too_long":
        return Issue(loc, "is too long", f"use at most {ctx.get('max_length')} characters")
    if kind == "union_tag_invalid":
        return Issue(loc, f"unknown generator {short_repr(ctx.get('tag'))}", f"use one of {ctx.get('expected_tags')} (or `level:` for Unreal)")
    if kind == "world_kind":
        generator = value.get("generator") if isinstance(value, dict) else None
        if generator is not None:
            return Issue((*loc, "generator"), f"unknown generator {short_repr(generator)}", "use one of city, forest, terrain, physics_sandbox, empty (or `level:` for Unreal)")
        return Issue(loc, "world has neither `generator` nor `level`", "add generator: city | forest | terrain | physics_sandbox | empty, or level: /Game/...")
    if kind in ("finite_number",):
        return Issue(loc, f"{short_repr(value)} is not a finite number", "write a finite number")
    if kind in _TYPE_WORDS:
        got = type(value).__name__ if value is not None else "null"
        return Issue(loc, f"{short_repr(value)} ({got}) is the wrong type", f"write {_TYPE_WORDS[kind]}")
    return Issue(loc, str(error.get("msg", "invalid value")), "see docs/manifests.md for this field")


# --------------------------------------------------------------------------- YAML


#: Largest manifest text accepted (a heightmap data URI of ~1 MiB fits).
MAX_MANIFEST_BYTES = 2 * 1024 * 1024
#: Most YAML nodes the document may expand to, counting every alias as a full copy of its anchor.
#: A "billion laughs" file (nine anchors of nine aliases) is 2 KB of text but 10^9 nodes once
#: validated; real manifests are a few hundred nodes (10,000 waypoints are 30,000).
MAX_YAML_NODES = 200_000
#: Deepest nesting of mappings and lists (a manifest needs about 8); PyYAML composes recursively.
MAX_YAML_DEPTH = 64


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses nesting deeper than MAX_YAML_DEPTH, so a 20,000-deep `[[[[...`
    fails at once: PyYAML's scanner is quadratic in flow nesting and its composer recursive."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        if self.flow_level >= MAX_YAML_DEPTH:
            raise _TooDeep(self.get_mark().line + 1)
        return super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _TooDeep(self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _expanded_size(root: yaml.Node, budget: int) -> int | None:
    """Nodes the document expands to with aliases copied out, or None past `budget`.

    PyYAML's composer returns the *same* node object for every alias of an anchor, so the tree
    is a DAG: sizes are memoised per node (the walk is linear in the text, not in the expansion),
    and a node met again while its own children are being counted is a self-referencing alias.
    """
    size: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            active.discard(key)
            children = _children(node)
            size[key] = min(budget + 1, 1 + sum(size[id(child)] for child in children))
            continue
        if key in size:
            continue
        if key in active:
            raise UserError("an alias (*name) refers to the mapping or list that contains it; fix: remove the self-reference")
        active.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)
    total = size[id(root)]
    return None if total > budget else total


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _duplicate_key(node: yaml.Node, path: Loc = (), seen_nodes: set[int] | None = None) -> tuple[Loc, int] | None:
    """The first key that appears twice in one mapping; an aliased node is checked once."""
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if id(node) in seen_nodes:
        return None
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if name is not None and name != "<<":
                if name in seen:
                    return (*path, name), key.start_mark.line + 1
                seen.add(name)
            found = _duplicate_key(value, (*path, name if name is not None else "?"), seen_nodes)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found = _duplicate_key(item, (*path, index), seen_nodes)
            if found:
                return found
    return None


def parse_yaml(text: str, source: str) -> tuple[Any, SourceMap]:
    """Construct the document and keep its node tree; YAML errors become one-line UserErrors."""
    if len(text) > MAX_MANIFEST_BYTES:
        raise UserError(f"{source}: the manifest is {len(text)} characters, more than {MAX_MANIFEST_BYTES}; fix: split it into several manifests")
    loader: yaml.SafeLoader | None = None
    try:
        loader = _BoundedLoader(text)  # the reader rejects control characters here already
        try:
            root = loader.get_single_node()
        except _TooDeep as deep:
            raise UserError(f"{source}:{deep.line}: values nest more than {MAX_YAML_DEPTH} levels deep; fix: flatten the structure") from None
        if root is None:
            raise UserError(f"{source}: the manifest is empty; fix: start from manifests/examples/quickstart.yaml")
        try:
            expanded = _expanded_size(root, MAX_YAML_NODES)
        except UserError as error:
            raise UserError(f"{source}: {error.one_line()}") from None
        if expanded is None:
            raise UserError(f"{source}: YAML aliases (*name) expand the document past {MAX_YAML_NODES} values; "
                            "fix: write the values out or use fewer, smaller anchors (nested aliases multiply)")
        duplicate = _duplicate_key(root)
        if duplicate is not None:
            loc, line = duplicate
            raise UserError(f"{source}:{line}: {format_loc(loc)}: key appears twice; fix: keep one of them (YAML silently drops the first)")
        data = loader.construct_document(root)
    except UserError:
        raise
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(error.problem or error.context or "invalid YAML").split())
        raise UserError(f"{source}{where}: YAML syntax error: {problem}; fix: check indentation, colons and quotes on that line") from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as error:
        raise UserError(f"{source}: YAML could not be read ({type(error).__name__}: {' '.join(str(error).split())[:120]}); fix: check the value's syntax") from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, SourceMap(root)


def _is_file(text: str) -> bool:
    try:
        return len(text) < 4096 and Path(text).is_file()
    except (OSError, ValueError):
        return False


def _read_source(path_or_text: str | Path, source_name: str | None) -> tuple[str, str]:
    looks_like_path = isinstance(path_or_text, str) and "\n" not in path_or_text and (path_or_text.strip().endswith((".yaml", ".yml", ".json")) or _is_file(path_or_text))
    if isinstance(path_or_text, Path) or looks_like_path:
        path = Path(path_or_text)
        if not path.is_file():
            raise UserError(f"{path}: no such manifest file; fix: check the path (examples live in manifests/examples/)")
        try:
            return path.read_text(encoding="utf-8"), source_name or str(path)
        except (OSError, UnicodeDecodeError) as error:
            raise UserError(f"{path}: cannot read the manifest ({type(error).__name__}); fix: save it as UTF-8 text") from None
    return path_or_text, source_name or "<manifest>"


def validate_data(data: Any, source: str, source_map: SourceMap | None = None) -> Manifest:
    """Validate constructed YAML/JSON data; raise a UserError for the first problem."""
    if not isinstance(data, dict):
        raise UserError(f"{source}:1: the manifest must be a mapping (version:, name:, seed:, output:, scenes:), not {type(data).__name__}; fix: start from manifests/examples/quickstart.yaml")
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as error:
        errors = error.errors()
        issues = [issue_from_pydantic(item, data) for item in errors]
        raise UserError(format_issue(source, source_map, issues[0], more=len(issues) - 1)) from None
    issues = check_manifest(manifest)
    if issues:
        raise UserError(format_issue(source, source_map, issues[0], more=len(issues) - 1))
    manifest._source = source
    return manifest


def load_manifest(path_or_text: str | Path | dict | Manifest, source_name: str | None = None) -> Manifest:
    """Load and validate a manifest from a file path, YAML text, a dict or a Manifest.

    Raises `UserError("FILE:LINE: field.path: problem; fix: ...")` for any mistake in the input.
    """
    if isinstance(path_or_text, Manifest):
        return path_or_text
    if isinstance(path_or_text, dict):
        return validate_data(path_or_text, source_name or "<manifest>")
    if not isinstance(path_or_text, (str, Path)):
        raise TypeError(f"load_manifest takes a path, YAML text, a dict or a Manifest, not {type(path_or_text).__name__}")
    text, source = _read_source(path_or_text, source_name)
    data, source_map = parse_yaml(text, source)
    return validate_data(data, source, source_map)
