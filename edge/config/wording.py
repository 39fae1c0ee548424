"""How a validation error is worded: ``key.path: expected <what the schema allows>, got <value>``.

pydantic's own messages name types and constraints in its terms; these name the YAML key and
what the user should write instead, from the field's type and constraints in the schema.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel

from edge.config.schema import NAME_PATTERN, SOURCE_TYPES, EdgeConfig

_KIND = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """Strip Annotated/Optional layers; return the bare type and the constraints met on the way."""
    metadata: list[Any] = []
    while True:
        if typing.get_origin(annotation) is Annotated:
            annotation, *extra = typing.get_args(annotation)
            for item in extra:
                metadata.extend(getattr(item, "metadata", None) or [item])
            continue
        if typing.get_origin(annotation) in (Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) == 1:
                annotation = args[0]
                continue
        return annotation, metadata


def _field_at(loc: tuple[Any, ...]) -> tuple[Any, list[Any]] | None:
    annotation: Any = EdgeConfig
    metadata: list[Any] = []
    for part in loc:
        annotation, metadata = _unwrap(annotation)
        if isinstance(part, int) and typing.get_origin(annotation) is list:
            annotation = typing.get_args(annotation)[0]
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and part in annotation.model_fields:
            info = annotation.model_fields[part]
            annotation = info.annotation
            metadata = list(info.metadata)
            continue
        if typing.get_origin(annotation) in (Union, types.UnionType):
            candidates = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
            match = [a for a in candidates if part in a.model_fields or part == typing.get_args(a.model_fields["type"].annotation)[0]]
            if match:
                annotation = match[0]
                if part in match[0].model_fields:
                    info = match[0].model_fields[part]
                    annotation, metadata = info.annotation, list(info.metadata)
                continue
        return None
    bare, inner = _unwrap(annotation)
    return bare, metadata + inner


def _expected(loc: tuple[Any, ...]) -> str | None:
    found = _field_at(loc)
    if found is None:
        return None
    bare, metadata = found
    if typing.get_origin(bare) is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(bare))
    kind = _KIND.get(bare)
    if kind is None:
        if typing.get_origin(bare) is list:
            lo_len = next((m.min_length for m in metadata if getattr(m, "min_length", None)), None)
            hi_len = next((m.max_length for m in metadata if getattr(m, "max_length", None)), None)
            if lo_len is not None and lo_len == hi_len:
                return f"a list of {lo_len} values"
            if lo_len is not None and hi_len is not None:
                return f"a list of {lo_len}-{hi_len} items"
            return "a list"
        if isinstance(bare, type) and issubclass(bare, BaseModel):
            return "a mapping of keys"
        return None
    lo = next((getattr(m, a) for m in metadata for a in ("ge", "gt") if getattr(m, a, None) is not None), None)
    hi = next((getattr(m, a) for m in metadata for a in ("le", "lt") if getattr(m, a, None) is not None), None)
    strict_lo = any(getattr(m, "gt", None) is not None for m in metadata)
    strict_hi = any(getattr(m, "lt", None) is not None for m in metadata)
    pattern = next((getattr(m, "pattern", None) for m in metadata if getattr(m, "pattern", None)), None)
    if pattern == NAME_PATTERN:
        return "a name of 1-64 letters, digits, '_' or '-'"
    if pattern:
        return f"a string matching {pattern}"
    if lo is not None and hi is not None:
        if bare is int and not strict_lo and not strict_hi:
            return f"{kind} {lo}-{hi}"
        return f"{kind} {'>' if strict_lo else '>='} {lo} and {'<' if strict_hi else '<='} {hi}"
    if lo is not None:
        return f"{kind} {'>' if strict_lo else '>='} {lo}"
    return kind


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def format_error(error: Any) -> str:
    """One pydantic error as ``key.path: what is expected, got value``."""
    loc = tuple(part for part in error["loc"] if part not in SOURCE_TYPES or error["loc"][0] != "source")
    path = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[") or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _field_at(loc[:-1])
        allowed = ""
        if parent and isinstance(parent[0], type) and issubclass(parent[0], BaseModel):
            allowed = " (expected one of: " + ", ".join(parent[0].model_fields) + ")"
        return f"{path}: unknown key{allowed}"
    if kind == "missing":
        return f"{path}: required"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        given = error.get("input")
        tag = given.get("type") if isinstance(given, dict) else given
        return f"{path}: expected type one of {', '.join(repr(t) for t in SOURCE_TYPES)}, got {_show(tag)}"
    if kind == "value_error":
        return f"{path}: {error['msg'].removeprefix('Value error, ')}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{path}: expected a mapping of keys, got {_show(error['input'])}"
    expected = _expected(loc)
    if expected:
        return f"{path}: expected {expected}, got {_show(error['input'])}"
    return f"{path}: {error['msg']}, got {_show(error['input'])}"


