"""Reading one tool call from an agent's reply, and writing tool definitions for ``info["tools"]``.

Shared by every tool-using env. A reply holds exactly one call, a JSON object::

    {"name": "search", "arguments": {"query": "Harlow Dynamics founder"}}

``"args"`` is accepted for ``"arguments"``; the OpenAI shape ``{"type": "function",
"function": {"name": ..., "arguments": "<JSON string>"}}`` is unwrapped. The object may sit in
a fenced code block (```` ```json ````), inside Hermes tags ``<tool_call>{...}</tool_call>``, or
in prose around it. :func:`parse_tool_call` never raises on bad input: it returns a
:class:`ToolCall` or a :class:`ToolCallError` whose ``message`` says what was wrong (no call,
invalid JSON, several calls, unknown shape, too long) in words an agent can act on.
:func:`check_arguments` then checks a call against the env's tool definitions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

MAX_CALL_CHARS = 20_000
"""Replies longer than this are not searched for a call."""

MAX_OBJECT_STARTS = 64
"""At most this many ``{`` positions are tried as the start of a JSON object."""

FORMAT_HINT = (
    'Reply with exactly one tool call, a JSON object such as {"name": "TOOL", "arguments": '
    "{...}}, optionally inside <tool_call></tool_call> tags or a ```json code block."
)
"""The sentence error messages end with."""

_OPENING = re.compile(r"[\[{]")

JsonType = Literal["string", "integer", "number", "boolean", "array", "object"]
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


@dataclass(frozen=True)
class ToolCall:
    """One parsed call: the tool's name and its arguments (read-only)."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "arguments", MappingProxyType(dict(self.arguments)))


@dataclass(frozen=True)
class ToolCallError:
    """Why a reply could not be read as one tool call."""

    message: str


@dataclass(frozen=True)
class ToolParam:
    """One parameter of a tool, for :func:`tool_definition`."""

    type: JsonType
    description: str
    required: bool = True


def parse_tool_call(text: Any, *, max_chars: int = MAX_CALL_CHARS) -> ToolCall | ToolCallError:
    """The single tool call in ``text``, or a :class:`ToolCallError` saying why there is none."""
    if not isinstance(text, str):
        return ToolCallError(f"A tool call must be text, got {type(text).__name__}. {FORMAT_HINT}")
    if len(text) > max_chars:
        return ToolCallError(
            f"Your reply has {len(text)} characters; a tool call may have at most {max_chars}. "
            + FORMAT_HINT
        )
    if not text.strip():
        return ToolCallError(f"Your reply is empty. {FORMAT_HINT}")
    tagged = re.findall(r"<tool_call>(.*?)</tool_call>", text, re.DOTALL)
    if len(tagged) > 1:
        return ToolCallError(f"Your reply holds {len(tagged)} tool calls; make one per turn.")
    if "<tool_call>" in text and not tagged:
        return ToolCallError(f"<tool_call> is not closed by </tool_call>. {FORMAT_HINT}")
    return _read_objects(tagged[0] if tagged else text)


def _read_objects(text: str) -> ToolCall | ToolCallError:
    objects, first_error = _json_values(text)
    calls = [value for value in objects if _looks_like_call(value)]
    if len(calls) > 1 or (len(calls) == 1 and isinstance(calls[0], list) and len(calls[0]) > 1):
        return ToolCallError("Your reply holds several tool calls; make exactly one per turn.")
    if not calls:
        if first_error is not None:  # a broken object came first: report it
            return ToolCallError(f"The tool call is not valid JSON ({first_error}). {FORMAT_HINT}")
        if objects:
            return ToolCallError(
                'The JSON object has no "name" of a tool (expected keys "name" and '
                f'"arguments"). {FORMAT_HINT}'
            )
        return ToolCallError(f"No tool call found in your reply. {FORMAT_HINT}")
    value = calls[0][0] if isinstance(calls[0], list) else calls[0]
    return _call_from(value)


def _json_values(text: str) -> tuple[list[Any], str | None]:
    """Every top-level JSON object or array found in ``text``, in order, and the error of the
    first ``{`` that failed to parse before any value was found."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    first_error: str | None = None
    position, tries = 0, 0
    while tries < MAX_OBJECT_STARTS:
        match = _OPENING.search(text, position)
        if match is None:
            break
        tries += 1
        try:
            value, end = decoder.raw_decode(text, match.start())
        except (json.JSONDecodeError, RecursionError) as error:
            if first_error is None and not values and match.group() == "{":
                first_error = getattr(error, "msg", "too deeply nested")
            position = match.start() + 1
            continue
        if isinstance(value, dict | list):
            values.append(value)
        position = end
    return values, first_error


def _looks_like_call(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(_looks_like_call(v) for v in value)
    return isinstance(value, dict) and ("name" in value or isinstance(value.get("function"), dict))


def _call_from(value: dict[str, Any]) -> ToolCall | ToolCallError:
    if isinstance(value.get("function"), dict):  # the OpenAI {"type": "function", ...} shape
        value = value["function"]
    name = value.get("name")
    if not isinstance(name, str) or not name.strip():
        return ToolCallError(f'"name" must be a non-empty string, got {name!r}. {FORMAT_HINT}')
    arguments = value.get("arguments", value.get("args", {}))
    if isinstance(arguments, str):  # OpenAI sends arguments as a JSON string
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as error:
            return ToolCallError(f'"arguments" is a string that is not valid JSON ({error.msg}).')
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        kind = type(arguments).__name__
        return ToolCallError(f'"arguments" must be a JSON object, got {kind}. {FORMAT_HINT}')
    return ToolCall(name.strip(), arguments)


def check_arguments(call: ToolCall, tools: Sequence[Mapping[str, Any]]) -> str | None:
    """``None`` when ``call`` fits one of ``tools`` (as :func:`tool_definition` writes them);
    otherwise a message naming the unknown tool, a missing, unexpected or mistyped argument."""
    specs = {tool["function"]["name"]: tool["function"]["parameters"] for tool in tools}
    if call.name not in specs:
        return f"Unknown tool {call.name!r}; the tools are {', '.join(sorted(specs))}."
    schema = specs[call.name]
    properties: Mapping[str, Any] = schema.get("properties", {})
    missing = [key for key in schema.get("required", []) if key not in call.arguments]
    if missing:
        return f"Tool {call.name!r} needs the argument(s) {', '.join(missing)}."
    unexpected = [key for key in call.arguments if key not in properties]
    if unexpected:
        allowed = ", ".join(properties) or "none"
        listed = ", ".join(unexpected)
        return f"Tool {call.name!r} got unexpected argument(s) {listed}; allowed: {allowed}."
    for key, value in call.arguments.items():
        expected = properties[key].get("type", "string")
        wrong_bool = isinstance(value, bool) and expected in ("integer", "number")
        if wrong_bool or not isinstance(value, _PY_TYPES.get(expected, (object,))):
            return f"Argument {key!r} of {call.name!r} must be a JSON {expected}."
    return None


def tool_definition(
    name: str, description: str, parameters: Mapping[str, ToolParam]
) -> dict[str, Any]:
    """A JSON-schema tool definition in the OpenAI / chat-template format."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
        raise ValueError(f"tool name {name!r} must be an identifier")
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {
                    key: {"type": p.type, "description": p.description}
                    for key, p in parameters.items()
                },
                "required": [key for key, p in parameters.items() if p.required],
            },
        },
    }


def format_tool_call(name: str, arguments: Mapping[str, Any]) -> str:
    """The canonical text of a call, as :func:`parse_tool_call` reads it."""
    return json.dumps({"name": name, "arguments": dict(arguments)}, ensure_ascii=False)
