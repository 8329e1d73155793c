"""Format checkers: JSON matching a schema, a bulleted list, markdown headings, a title line.

The JSON check validates a subset of JSON Schema that needs no third-party package:
``type`` (one name or a list), ``properties``, ``required``, ``additionalProperties``
(bool), ``items``, ``minItems``/``maxItems``, ``enum``, ``minimum``/``maximum`` and
``minLength``/``maxLength``. Unknown keywords are refused when the checker is built, so a
schema never silently checks less than it says.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from rlvr.rewards.rubric_base import (
    HEADING,
    WORD,
    Answer,
    Check,
    Checker,
    CountChecker,
    bounded,
    normalize,
    quoted,
    range_words,
    text_tuple,
)

# fmt: off
_SCHEMA_KEYS = frozenset((
    "type", "properties", "required", "additionalProperties", "items", "minItems",
    "maxItems", "enum", "minimum", "maximum", "minLength", "maxLength", "description",
    "title",
))
# fmt: on
_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _check_schema(schema: Any, where: str = "$") -> None:
    if not isinstance(schema, Mapping):
        raise ValueError(f"json_schema: {where} must be an object, got {schema!r}")
    unknown = sorted(set(schema) - _SCHEMA_KEYS)
    if unknown:
        raise ValueError(f"json_schema: {where} uses unsupported keywords {unknown}")
    for name, sub in dict(schema.get("properties", {})).items():
        _check_schema(sub, f"{where}.{name}")
    if "items" in schema:
        _check_schema(schema["items"], f"{where}[]")


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES.get(name, ()))


def schema_errors(value: Any, schema: Mapping[str, Any], where: str = "$") -> list[str]:
    """Every way ``value`` breaks ``schema`` (the subset in the module docstring)."""
    types = schema.get("type")
    names = [types] if isinstance(types, str) else list(types or [])
    if names and not any(_is_type(value, name) for name in names):
        return [f"{where}: expected {'/'.join(names)}, got {type(value).__name__}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: {value} > maximum {schema['maximum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{where}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{where}: longer than {schema['maxLength']} characters")
    if isinstance(value, list):
        errors += _array_errors(value, schema, where)
    if isinstance(value, dict):
        errors += _object_errors(value, schema, where)
    return errors


def _array_errors(value: list[Any], schema: Mapping[str, Any], where: str) -> list[str]:
    errors = []
    if len(value) < schema.get("minItems", 0):
        errors.append(f"{where}: fewer than {schema['minItems']} items")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(f"{where}: more than {schema['maxItems']} items")
    if "items" in schema:
        for index, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{where}[{index}]")
    return errors


def _object_errors(value: dict[str, Any], schema: Mapping[str, Any], where: str) -> list[str]:
    properties = dict(schema.get("properties", {}))
    errors = [
        f"{where}: missing key {key!r}" for key in schema.get("required", ()) if key not in value
    ]
    if schema.get("additionalProperties", True) is False:
        errors += [f"{where}: unexpected key {key!r}" for key in value if key not in properties]
    for key, sub in properties.items():
        if key in value:
            errors += schema_errors(value[key], sub, f"{where}.{key}")
    return errors


@dataclass(frozen=True)
class JsonSchema(Checker):
    """The answer is one JSON value (the whole reply, or its only fenced block) matching
    ``schema``; 1 when it does, 0 otherwise."""

    kind: ClassVar[str] = "json_schema"
    schema: Mapping[str, Any]

    def __post_init__(self) -> None:
        _check_schema(self.schema)
        object.__setattr__(self, "schema", json.loads(json.dumps(self.schema)))

    def __call__(self, answer: Answer) -> Check:
        value = answer.json_value
        if value is None:
            return Check(0.0, "no JSON value found")
        errors = schema_errors(value, self.schema)
        if errors:
            return Check(0.0, "; ".join(errors[:4]) + (" ..." if len(errors) > 4 else ""))
        return Check(1.0, "valid JSON matching the schema")

    def describe(self) -> str:
        text = json.dumps(self.schema, separators=(", ", ": "))
        return f"Reply with only a JSON object that matches this JSON schema: {text}"

    def __hash__(self) -> int:
        return hash(json.dumps(self.schema, sort_keys=True))


BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,3}[.)])\s+\S")


@dataclass(frozen=True)
class BulletList(CountChecker):
    """The number of bulleted lines (``-``, ``*``, ``•`` or ``1.``) lies in ``[min, max]``."""

    kind: ClassVar[str] = "bullet_list"

    def __call__(self, answer: Answer) -> Check:
        count = sum(1 for line in answer.text.splitlines() if BULLET.match(line))
        if count == 0:
            return Check(0.0, "no bulleted list")
        return bounded(count, self.min, self.max, "bullets")

    def describe(self) -> str:
        count = range_words(self.min, self.max, "items")
        return f'Include a bulleted list ("- " at the start of each item) with {count}.'


@dataclass(frozen=True)
class Headings(Checker):
    """The markdown headings ``titles`` appear (any ``#`` level), in this order;
    score = share of them present and in order."""

    kind: ClassVar[str] = "headings"
    titles: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "titles", text_tuple(self.titles, "headings.titles"))

    def __call__(self, answer: Answer) -> Check:
        found = [normalize(line.lstrip("#")) for line in answer.lines if HEADING.match(line)]
        position, hits = 0, 0
        for title in self.titles:
            wanted = normalize(title)
            if wanted in found[position:]:
                position = found.index(wanted, position) + 1
                hits += 1
        detail = f"{hits} of {len(self.titles)} headings found in order"
        return Check(hits / len(self.titles), detail)

    def describe(self) -> str:
        shown = tuple(f"## {title}" for title in self.titles)
        return f"Organize the answer under the markdown headings {quoted(shown)}, in this order."


@dataclass(frozen=True)
class TitleLine(Checker):
    """The first non-empty line is a title: starts with ``prefix``, has at most ``max_words``
    words, no final period, and a blank line (or nothing) after it."""

    kind: ClassVar[str] = "title_line"
    prefix: str = ""
    max_words: int = 12

    def __post_init__(self) -> None:
        if self.max_words < 1:
            raise ValueError(f"title_line.max_words must be >= 1, got {self.max_words}")

    def __call__(self, answer: Answer) -> Check:
        lines = answer.text.strip().splitlines()
        if not lines:
            return Check(0.0, "empty answer")
        title = lines[0].strip()
        problems = []
        if not normalize(title).startswith(normalize(self.prefix)):
            problems.append(f"does not start with {self.prefix!r}")
        if len(WORD.findall(title)) > self.max_words or len(WORD.findall(title)) == 0:
            problems.append(f"has {len(WORD.findall(title))} words")
        if title.endswith("."):
            problems.append("ends with a period")
        if len(lines) > 1 and lines[1].strip():
            problems.append("is not followed by a blank line")
        return Check(float(not problems), "title: " + ("; ".join(problems) or "ok"))

    def describe(self) -> str:
        start = f' that begins with "{self.prefix}"' if self.prefix else ""
        return (
            f"Start with a title line{start} (at most {self.max_words} words, no final period), "
            "followed by a blank line."
        )
