"""Reading recipes: YAML, ``base:`` inheritance, ``--set`` overrides and readable validation errors."""

from __future__ import annotations

import copy
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from clsctl.errors import RecipeError
from clsctl.readers import read_recipe_yaml
from clsctl.recipe.schema import Recipe
from clsctl.registry import suggest

REPLACE_KEY = "_replace_"  # a mapping holding `_replace_: true` replaces the inherited one instead of merging


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into a copy of ``base``; mappings merge key by key, everything else is replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and value.get(REPLACE_KEY):
            merged[key] = _strip_replace(value)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = _strip_replace(value) if isinstance(value, dict) else copy.deepcopy(value)
    return merged


def _strip_replace(value: dict[str, Any]) -> dict[str, Any]:
    return {k: (_strip_replace(v) if isinstance(v, dict) else copy.deepcopy(v)) for k, v in value.items() if k != REPLACE_KEY}


def resolve_bases(path: Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read ``path`` and merge its ``base:`` files (relative to it) under it, recursively."""
    path = path.resolve()
    if path in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path))
        raise RecipeError(f"recipe bases form a cycle: {cycle}")
    data = read_recipe_yaml(path)
    bases = data.pop("base", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise RecipeError(f"{path}: base: must be a list of file paths (got {bases!r})")
    merged: dict[str, Any] = {}
    for base in bases:
        merged = deep_merge(merged, resolve_bases(path.parent / base, (*_chain, path)))
    return deep_merge(merged, data)


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``path.to.key=value`` override in place; the value is parsed as YAML, list indices allowed."""
    if "=" not in assignment:
        raise RecipeError(f"--set {assignment!r}: expected path.to.key=value")
    dotted, raw = assignment.split("=", 1)
    keys = dotted.strip().split(".")
    if not all(keys):
        raise RecipeError(f"--set {assignment!r}: empty key in {dotted!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise RecipeError(f"--set {assignment!r}: value is not valid YAML ({exc})") from exc
    node: Any = data
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        where = ".".join(keys[: depth + 1])
        if isinstance(node, list):
            if not key.lstrip("-").isdigit() or not -len(node) <= int(key) < len(node):
                raise RecipeError(f"--set {assignment!r}: {where}: no list item {key} (the list has {len(node)})")
            if last:
                node[int(key)] = value
            else:
                node = node[int(key)]
        elif isinstance(node, dict):
            if last:
                node[key] = value
            else:
                node = node.setdefault(key, {})
        else:
            raise RecipeError(f"--set {assignment!r}: {'.'.join(keys[:depth])} is a value, not a mapping or list")


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read, merge, override and validate a recipe file.

    Args:
        path: YAML recipe.
        overrides: ``path.to.key=value`` strings applied after inheritance.

    Raises:
        RecipeError: With one ``file: path.to.key: message (got X)`` line per problem.
    """
    path = Path(path)
    data = resolve_bases(path)
    for assignment in overrides:
        apply_override(data, assignment)
    data.setdefault("name", path.stem)  # the run folder defaults to runs/<name>, then -2, -3...
    return validate_recipe(data, source=str(path))


def validate_recipe(data: dict[str, Any], source: str = "recipe") -> Recipe:
    """Validate already-merged recipe data (from a file or a checkpoint)."""
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {line}" for line in format_validation_errors(exc, data, Recipe)]
        noun = "problem" if len(lines) == 1 else "problems"
        raise RecipeError(f"{source}: {len(lines)} {noun} in the recipe", details=lines) from None


# --------------------------------------------------------------------------- error formatting


def format_validation_errors(exc: ValidationError, data: Any, root: type[BaseModel]) -> list[str]:
    """One ``path.to.key: message (got X)`` line per pydantic error.

    Tags of discriminated unions and the member labels pydantic adds for plain unions (``list[...]``,
    ``tagged-union[...]``, ``int``) are removed from paths; of the errors a union produces, only those of the
    members whose shape fits what the user wrote (a mapping, a list, a scalar) are kept.
    """
    found = []
    for error in exc.errors():
        path, parent, model, labels = _walk(data, root, error["loc"])
        message = _message(error, parent, model)
        where = ".".join(str(p) for p in path) or "(top level)"
        got = ""
        if error["type"] not in ("missing",) and not isinstance(error.get("input"), dict):
            got = f" (got {_short(error.get('input'))})"
        found.append((where, labels, f"{where}: {message}{got}"))
    lines = []
    for where, labels, line in found:
        competing = [other for other in found if other[0] == where and other[1] != labels]
        if labels and competing and not all(fits for _, fits in labels):
            continue  # a union member the input's shape does not match
        lines.append(line)
    return list(dict.fromkeys(lines or [line for _, _, line in found]))


def _fits(label: str, value: Any) -> bool:
    """Whether a union member labelled ``label`` by pydantic could take ``value``."""
    if label.startswith(("list[", "tuple[", "set[")):
        return isinstance(value, (list, tuple))
    if label.startswith(("tagged-union[", "function-", "dict[", "model[")) or label[:1].isupper():
        return isinstance(value, dict)
    return not isinstance(value, (dict, list))


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    text = text.removesuffix("...").strip()
    return text if len(text) <= 60 else text[:57] + "..."


def _walk(data: Any, root: type[BaseModel], loc: Iterable[Any]) -> tuple[list[Any], Any, type[BaseModel] | None,
                                                                           list[tuple[str, bool]]]:
    """Follow ``loc`` through the data and the schema, dropping the labels pydantic inserts for unions.

    Returns:
        The user-facing path, the data node holding the last key, the pydantic model at that node, and the
        union-member labels met on the way, each with whether the data there fits it.
    """
    path: list[Any] = []
    labels: list[tuple[str, bool]] = []
    node, parent = data, None
    annotation: Any = root
    model: type[BaseModel] | None = root
    for key in loc:
        candidates = _models_in(annotation)
        tagged = [c for c in candidates if _tag_of(c) == key]
        if isinstance(node, dict) and key not in node and tagged:
            annotation, model = tagged[0], tagged[0]
            continue  # a discriminator tag, not a key the user wrote
        if isinstance(key, str) and not (isinstance(node, dict) and key in node) and _is_union_label(key, model):
            labels.append((key, _fits(key, node)))
            if key.startswith(("list[", "tuple[")):
                annotation = _list_member(annotation)
            continue
        if len(candidates) == 1:
            model = candidates[0]
        elif isinstance(node, dict):
            model = next((c for c in candidates if _tag_of(c) == node.get("type")), None)
        else:
            model = None
        path.append(key)
        parent = node
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            node = None
        annotation = _child_annotation(annotation, model, key)
    return path, parent, model, labels


def _is_union_label(key: str, model: type[BaseModel] | None) -> bool:
    """Pydantic names plain-union members by their type: ``list[...]``, ``tagged-union[...]``, ``int``."""
    if model is not None and key in model.model_fields:
        return False
    return "[" in key or key in ("int", "float", "str", "bool", "none", "dict")


def _list_member(annotation: Any) -> Any:
    for arg in typing.get_args(_strip(annotation)) or ():
        if typing.get_origin(_strip(arg)) is list:
            return arg
    return annotation


def _strip(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    annotation = _strip(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)):
        found = []
        for arg in typing.get_args(annotation):
            found += _models_in(arg)
        return found
    return []


def _tag_of(model: type[BaseModel]) -> Any:
    field = model.model_fields.get("type")
    if field is None:
        return None
    args = typing.get_args(_strip(field.annotation))
    return args[0] if args else None


def _child_annotation(annotation: Any, model: type[BaseModel] | None, key: Any) -> Any:
    if model is not None and isinstance(key, str) and key in model.model_fields:
        return model.model_fields[key].annotation
    annotation = _strip(annotation)
    for arg in typing.get_args(annotation) or ():
        if typing.get_origin(_strip(arg)) is list:
            return typing.get_args(_strip(arg))[0]
    if typing.get_origin(annotation) is list:
        return typing.get_args(annotation)[0]
    return None


def _message(error: dict[str, Any], parent: Any, model: type[BaseModel] | None) -> str:
    kind, message = error["type"], error["msg"]
    key = error["loc"][-1] if error["loc"] else None
    if kind == "extra_forbidden" and model is not None:
        close = suggest(str(key), list(model.model_fields))
        hint = "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?" if close else ""
        return f"unknown key '{key}'{hint} (allowed: {', '.join(model.model_fields)})"
    if kind == "union_tag_invalid":
        expected = [t.strip(" '") for t in str(error.get("ctx", {}).get("expected_tags", "")).split(",") if t.strip()]
        tag = error.get("ctx", {}).get("tag")
        close = suggest(str(tag), expected)
        hint = "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?" if close else ""
        return f"unknown type '{tag}'{hint} (known: {', '.join(expected)})"
    if kind == "union_tag_not_found":
        return "needs a 'type' key"
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    return message
