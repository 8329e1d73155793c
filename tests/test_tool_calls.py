"""The shared tool-call parser: the accepted forms, every bad input as a clear error, schemas."""

from __future__ import annotations

import json
import random

import pytest

from rlvr.envs.tool_calls import (
    MAX_CALL_CHARS,
    ToolCall,
    ToolCallError,
    ToolParam,
    check_arguments,
    format_tool_call,
    parse_tool_call,
    tool_definition,
)

CALL = {"name": "search", "arguments": {"query": "Harlow Dynamics founder"}}
TOOLS = [
    tool_definition("search", "Search.", {"query": ToolParam("string", "Words.")}),
    tool_definition(
        "buy",
        "Buy an item.",
        {
            "item": ToolParam("string", "Item id."),
            "count": ToolParam("integer", "How many."),
            "gift": ToolParam("boolean", "Wrap it.", required=False),
        },
    ),
]


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(CALL),
        json.dumps({"name": "search", "args": CALL["arguments"]}),
        f"```json\n{json.dumps(CALL)}\n```",
        f"```\n{json.dumps(CALL, indent=2)}\n```",
        f"<tool_call>{json.dumps(CALL)}</tool_call>",
        f"<tool_call>\n{json.dumps(CALL)}\n</tool_call>",
        f"I will look this up first.\n{json.dumps(CALL)}\nThen I will read the result.",
        json.dumps([CALL]),
        json.dumps(
            {
                "type": "function",
                "function": {"name": "search", "arguments": json.dumps(CALL["arguments"])},
            }
        ),
    ],
)
def test_accepted_forms_give_the_same_call(text):
    call = parse_tool_call(text)
    assert call == ToolCall("search", {"query": "Harlow Dynamics founder"})


def test_arguments_default_to_empty_and_the_call_is_read_only():
    call = parse_tool_call('{"name": " list_items "}')
    assert isinstance(call, ToolCall)
    assert call.name == "list_items" and dict(call.arguments) == {}
    with pytest.raises(TypeError):
        call.arguments["x"] = 1  # type: ignore[index]
    with pytest.raises(AttributeError):
        call.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "text,words",
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ("search for Harlow", "No tool call found"),
        ('{"name": "search", "arguments": {"query": "x"}', "not valid JSON"),
        ('{"arguments": {"query": "x"}}', 'no "name"'),
        ('{"name": 3, "arguments": {}}', "non-empty string"),
        ('{"name": "", "arguments": {}}', "non-empty string"),
        ('{"name": "search", "arguments": [1, 2]}', "must be a JSON object"),
        ('{"name": "search", "arguments": "{not json"}', "not valid JSON"),
        (json.dumps(CALL) + "\n" + json.dumps(CALL), "several tool calls"),
        (json.dumps([CALL, CALL]), "several tool calls"),
        (f"<tool_call>{json.dumps(CALL)}</tool_call><tool_call>{{}}</tool_call>", "2 tool calls"),
        (f"<tool_call>{json.dumps(CALL)}", "not closed"),
        ("a" * (MAX_CALL_CHARS + 1), "at most"),
    ],
)
def test_bad_input_gives_a_clear_error(text, words):
    result = parse_tool_call(text)
    assert isinstance(result, ToolCallError)
    assert words in result.message


def test_non_text_input_is_an_error_not_an_exception():
    for value in (None, 3, b"{}", ["x"], {"name": "search"}):
        result = parse_tool_call(value)
        assert isinstance(result, ToolCallError) and "text" in result.message


def test_pathological_input_never_raises():
    rng = random.Random(0)
    alphabet = '{}[]":,\\ abc\n<>/_tool_call\u00e9\u4e2d\U0001f600\x00'
    samples = [
        "[" * 5000 + "]" * 5000,
        "{" * 5000,
        '{"name": "x", "arguments": ' * 500,
        "<tool_call>" * 100,
        *("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300))) for _ in range(300)),
    ]
    for text in samples:
        assert isinstance(parse_tool_call(text), ToolCall | ToolCallError)


def test_check_arguments_names_each_problem():
    def check(text: str) -> str | None:
        call = parse_tool_call(text)
        assert isinstance(call, ToolCall)
        return check_arguments(call, TOOLS)

    assert check('{"name": "buy", "arguments": {"item": "A1", "count": 2}}') is None
    assert check('{"name": "buy", "arguments": {"item": "A1", "count": 2, "gift": true}}') is None
    assert "Unknown tool 'sell'" in str(check('{"name": "sell", "arguments": {}}'))
    assert "needs the argument(s) count" in str(
        check('{"name": "buy", "arguments": {"item": "A"}}')
    )
    unexpected = check('{"name": "search", "arguments": {"query": "q", "page": 2}}')
    assert "unexpected argument(s) page" in str(unexpected)
    assert "JSON integer" in str(check('{"name": "buy", "arguments": {"item": "A", "count": "2"}}'))
    assert "JSON integer" in str(
        check('{"name": "buy", "arguments": {"item": "A", "count": true}}')
    )
    assert "JSON string" in str(check('{"name": "search", "arguments": {"query": ["a"]}}'))


def test_tool_definition_is_the_openai_json_schema_shape():
    definition = TOOLS[1]
    assert definition["type"] == "function"
    function = definition["function"]
    assert function["name"] == "buy" and function["description"] == "Buy an item."
    assert function["parameters"]["type"] == "object"
    assert function["parameters"]["properties"]["count"] == {
        "type": "integer",
        "description": "How many.",
    }
    assert function["parameters"]["required"] == ["item", "count"]
    json.dumps(definition)  # serialisable as is
    with pytest.raises(ValueError, match="identifier"):
        tool_definition("two words", "x", {})


def test_format_tool_call_round_trips():
    text = format_tool_call("search", {"query": "Zoë 中文"})
    assert parse_tool_call(text) == ToolCall("search", {"query": "Zoë 中文"})
