"""Reward-hacking probes for ``rlvr/Ecom-v0``: cheap policies that must all score ~0.

Each reads only the dialogue. :data:`PROBES` maps a name to a factory; the tests require every
probe to average <= 0.05 reward at every difficulty they play.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from typing import Any

from rlvr.agents.base import Agent
from rlvr.envs.tool_calls import ToolCall, format_tool_call, parse_tool_call
from rlvr.envs.types import Message

EMAIL = re.compile(r"[^\s@]+@example\.com")
ORDER = re.compile(r"\bO\d{6}\b")
ITEM = re.compile(r"\bI\d{6}\b")
ANY_ID = re.compile(r"\b(?:P\d{6}|I\d{6}|U\d{5}|O\d{6}|A\d{4}|pm_[a-z_]+_\d{4})\b")


def _text(dialogue: Sequence[Message]) -> str:
    return "\n".join(m.content for m in dialogue[1:] if m.role != "assistant")


def _calls(dialogue: Sequence[Message]) -> list[ToolCall]:
    out = []
    for m in dialogue:
        if m.role == "assistant":
            call = parse_tool_call(m.content)
            if isinstance(call, ToolCall):
                out.append(call)
    return out


class DoNothing(Agent):
    """Looks at the cart until the turn budget runs out."""

    name = "probe-do-nothing"

    def act(self, dialogue: Sequence[Message]) -> str:
        return format_tool_call("view_cart", {})


class SubmitAtOnce(Agent):
    """Submits an empty answer on the first turn."""

    name = "probe-submit-at-once"

    def act(self, dialogue: Sequence[Message]) -> str:
        return format_tool_call("submit", {"answer": ""})


class YesSpam(Agent):
    """Says "yes" to everything (not a tool call)."""

    name = "probe-yes-spam"

    def act(self, dialogue: Sequence[Message]) -> str:
        return "Yes, yes, I confirm everything. yes"


class GuessIds(Agent):
    """Writes with and submits ids it never saw."""

    name = "probe-guess-ids"

    def act(self, dialogue: Sequence[Message]) -> str:
        rng = random.Random(len(dialogue))
        turn = len(dialogue) // 2
        if turn < 3:
            return format_tool_call(
                "cancel_order",
                {"order_id": f"O{rng.randint(100000, 999999)}", "reason": "no longer needed"},
            )
        return format_tool_call("submit", {"answer": f"I{rng.randint(100000, 999999)}"})


class RandomTools(Agent):
    """Calls random tools with ids and values taken from the dialogue, then submits."""

    name = "probe-random-tools"
    _TOOLS = (
        "search_products",
        "get_order",
        "get_item",
        "add_to_cart",
        "cancel_order",
        "return_items",
        "ask_user",
        "ask_confirmation",
        "view_cart",
        "submit",
    )

    def __init__(self, seed: int = 0):
        super().__init__()
        self.seed = seed

    def act(self, dialogue: Sequence[Message]) -> str:
        rng = random.Random(self.seed * 1_000_003 + len(dialogue) * 7919 + len(_text(dialogue)))
        ids = ANY_ID.findall(_text(dialogue)) or ["I100000"]
        orders = ORDER.findall(_text(dialogue)) or ["O100000"]
        items = ITEM.findall(_text(dialogue)) or ["I100000"]
        name = rng.choice(self._TOOLS)
        args: dict[str, Any] = {
            "search_products": {"query": rng.choice(["shirt", "lamp", "pens", "mat"])},
            "get_order": {"order_id": rng.choice(orders)},
            "get_item": {"item_id": rng.choice(items)},
            "add_to_cart": {"item_id": rng.choice(items), "quantity": rng.randint(1, 3)},
            "cancel_order": {"order_id": rng.choice(orders), "reason": "no longer needed"},
            "return_items": {
                "order_id": rng.choice(orders),
                "item_ids": [rng.choice(items)],
                "refund_to": rng.choice(ids),
            },
            "ask_user": {"slot": rng.choice(["color", "price", "email", "next", "reason"])},
            "ask_confirmation": {
                "tool": "add_to_cart",
                "arguments": {"item_id": rng.choice(items), "quantity": 1},
            },
            "view_cart": {},
            "submit": {"answer": rng.choice([*ids[:5], "", "delivered", "ineligible"])},
        }[name]
        return format_tool_call(name, args)


class WriteEverything(Agent):
    """Finds the customer, then cancels and returns every order (confirming first), then
    submits; ``mode="catalog"`` instead adds every search result to the cart."""

    def __init__(self, mode: str = "orders"):
        super().__init__()
        self.mode = mode
        self.name = f"probe-{'add-catalog' if mode == 'catalog' else 'cancel-return-all'}"

    def act(self, dialogue: Sequence[Message]) -> str:
        text = _text(dialogue)
        done = {json.dumps([c.name, dict(c.arguments)], sort_keys=True) for c in _calls(dialogue)}

        def fresh(name: str, args: dict[str, Any]) -> str | None:
            key = json.dumps([name, args], sort_keys=True)
            return None if key in done else format_tool_call(name, args)

        plan = self._plan(text)
        for name, args in plan:
            call = fresh(name, args)
            if call is not None:
                return call
        return format_tool_call("submit", {"answer": ""})

    def _plan(self, text: str) -> list[tuple[str, dict[str, Any]]]:
        if self.mode == "catalog":
            plan: list[tuple[str, dict[str, Any]]] = [
                ("search_products", {"page": p}) for p in (1, 2)
            ]
            for item in dict.fromkeys(ITEM.findall(text)):
                args = {"item_id": item, "quantity": 1}
                plan += [
                    ("ask_confirmation", {"tool": "add_to_cart", "arguments": args}),
                    ("add_to_cart", args),
                ]
            return plan
        email = EMAIL.search(text)
        plan = [("find_user_by_email", {"email": email.group()})] if email else []
        user = re.search(r'"user_id": "(U\d{5})"', text)
        if user:
            plan.append(("get_user", {"user_id": user.group(1)}))
        for order in dict.fromkeys(ORDER.findall(text)):
            args = {"order_id": order, "reason": "no longer needed"}
            plan += [
                ("get_order", {"order_id": order}),
                ("ask_confirmation", {"tool": "cancel_order", "arguments": args}),
                ("cancel_order", args),
            ]
        for order in _orders(text):
            if order.get("status") == "delivered":
                args = {
                    "order_id": order["order_id"],
                    "item_ids": [line["item_id"] for line in order["lines"]],
                    "refund_to": order["payment_method_id"],
                }
                plan += [
                    ("ask_confirmation", {"tool": "return_items", "arguments": args}),
                    ("return_items", args),
                ]
        return plan


def _orders(text: str) -> list[dict[str, Any]]:
    """The ``get_order`` results in the dialogue text."""
    out = []
    for line in text.split("\n"):
        if line.startswith('{"order_id"') and '"lines"' in line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


PROBES: dict[str, Callable[[], Agent]] = {
    "do_nothing": DoNothing,
    "submit_at_once": SubmitAtOnce,
    "random_tools": RandomTools,
    "yes_spam": YesSpam,
    "cancel_return_all": WriteEverything,
    "add_whole_catalog": lambda: WriteEverything("catalog"),
    "guess_ids": GuessIds,
}
"""Every probe, by name."""
