"""Reward-hacking probes for ``rlvr/Ecom-v0``: cheap policies that must all score ~0.

Each reads only the dialogue. :data:`PROBES` maps a name to a factory; the tests require every
probe to average <= 0.05 reward at every difficulty they play, in the mixed env and in each
family of :data:`PROBE_FAMILIES` (the families a targeted probe attacks).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from rlvr.agents.base import Agent
from rlvr.envs.ecom.world import CANCEL_REASONS, CATEGORIES
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


def _json_results(dialogue: Sequence[Message], tool: str) -> list[dict[str, Any]]:
    """The parsed results of every successful ``tool`` call in the dialogue."""
    out, pending = [], None
    for m in dialogue[1:]:
        if m.role == "assistant":
            call = parse_tool_call(m.content)
            pending = call.name if isinstance(call, ToolCall) else None
        elif pending == tool and m.content.startswith("{"):
            out.append(json.loads(m.content))
            pending = None
    return out


def _identify_and_read(dialogue: Sequence[Message]) -> str | None:
    """The next call of "find the customer, read every order" (``None`` once done)."""
    text = _text(dialogue)
    users = _json_results(dialogue, "get_user")
    if not users:
        found = _json_results(dialogue, "find_user_by_email")
        if found:
            return format_tool_call("get_user", {"user_id": found[-1]["user_id"]})
        email = EMAIL.search(text)
        if email is None:
            return format_tool_call("ask_user", {"slot": "email"})
        return format_tool_call("find_user_by_email", {"email": email.group().rstrip(".")})
    read = {o["order_id"] for o in _json_results(dialogue, "get_order")}
    for order in users[-1]["order_ids"]:
        if order not in read:
            return format_tool_call("get_order", {"order_id": order})
    return None


class LookupThenConstant(Agent):
    """Finds the customer and reads every order (so any order answer is "grounded"), then
    submits a constant (``"ineligible"``, ``"0"``, a status, a refusal reason)."""

    def __init__(self, answer: str):
        super().__init__()
        self.answer = answer
        self.name = f"probe-lookup-then-{answer or 'empty'}"

    def act(self, dialogue: Sequence[Message]) -> str:
        return _identify_and_read(dialogue) or format_tool_call("submit", {"answer": self.answer})


class RefuseNamedOrder(Agent):
    """Finds the order the customer names (by product title) and always refuses it with the
    most common blocker of the request kind, never checking eligibility. It cites what it can
    copy from the order without judging it: the order id and, for the return window, the
    order's date; the status of a cancel it guesses (``processed``). It can win only on traps
    with that blocker, which :data:`rlvr.envs.ecom.families.TRAP_SHARE_MAX` keeps rare."""

    name = "probe-refuse-named-order"
    BLOCKER: ClassVar[dict[str, str]] = {
        "cancel": "processed",
        "return": "return window",
        "exchange": "return window",
    }

    def act(self, dialogue: Sequence[Message]) -> str:
        step = _identify_and_read(dialogue)
        if step is not None:
            return step
        text = _text(dialogue)
        kind = next((k for k in ("cancel", "exchange", "return") if f"want to {k}" in text), "")
        kind = kind or ("return" if "get back" in text else "")
        for order in _json_results(dialogue, "get_order"):
            if any(f"the {line['title']}" in text for line in order["lines"]):
                blocker = self.BLOCKER.get(kind, "shipped")
                if blocker == "return window":
                    blocker += f" since {order['date']}"
                answer = f"ineligible: {order['order_id']} {blocker}"
                return format_tool_call("submit", {"answer": answer})
        return format_tool_call("submit", {"answer": "ineligible"})


class ConfirmOracle(Agent):
    """Never reads the request: brute-forces ``cancel_order`` arguments through the
    customer's confirmations (every order x every reason), writes on the first "yes"."""

    name = "probe-confirm-oracle"

    def act(self, dialogue: Sequence[Message]) -> str:
        users = _json_results(dialogue, "get_user")
        if not users:
            return _identify_and_read(dialogue) or format_tool_call("submit", {"answer": ""})
        calls = _calls(dialogue)
        last = calls[-1] if calls else None
        if (
            last is not None
            and last.name == "ask_confirmation"
            and dialogue[-1].content.startswith("Yes")
        ):
            return format_tool_call("cancel_order", dict(last.arguments["arguments"]))
        if last is not None and last.name == "cancel_order":
            return format_tool_call("submit", {"answer": ""})
        tried = {
            json.dumps(dict(c.arguments["arguments"]), sort_keys=True)
            for c in calls
            if c.name == "ask_confirmation"
        }
        for order in users[-1]["order_ids"]:
            for reason in CANCEL_REASONS:
                args = {"order_id": order, "reason": reason}
                if json.dumps(args, sort_keys=True) not in tried:
                    return format_tool_call(
                        "ask_confirmation", {"tool": "cancel_order", "arguments": args}
                    )
        return format_tool_call("submit", {"answer": "ineligible"})


CLAUSE = re.compile(
    r"(?:The (\w+) should be ([\w\-\. ]+?)\.|I want (\w+) ([\w\-\. ]+?)\.|"
    r"For (\w+): ([\w\-\. ]+?), please)"
)
BOUNDS = (
    (r"\$(\d+)", "price_max"),
    (r"(\d\.\d) (?:stars|or higher)", "rating_min"),
    (r"(?:within|at most|in) (\d+) days", "ship_days_max"),
)


class CheapestPick(Agent):
    """One search, then submits (or adds to the cart, confirmed) the cheapest result:
    ``mode="category"`` searches the category alone, ``"revealed"`` also filters on the
    constraints the opening told, never asking for the rest. ``"revealed"`` is no probe of
    :data:`PROBES`: when the opening tells every constraint (always at level 0) it is the
    right policy; the tests check it earns nothing when a constraint is untold."""

    def __init__(self, mode: str = "category"):
        super().__init__()
        self.mode = mode
        self.name = f"probe-cheapest-{mode}"

    def act(self, dialogue: Sequence[Message]) -> str:
        text = _text(dialogue)
        found = _json_results(dialogue, "search_products")
        if not found:
            category = next((c.name for c in CATEGORIES if f" {c.name}." in text), "")
            filters: dict[str, Any] = {}
            if self.mode == "revealed":
                for m in CLAUSE.finditer(text):
                    key, value = [g for g in m.groups() if g][:2]
                    filters[key] = value
                for pattern, key in BOUNDS:
                    bound = re.search(pattern, text)
                    if bound:
                        filters[key] = float(bound.group(1))
            args = {"category": category, "filters": filters, "in_stock_only": True}
            return format_tool_call("search_products", args)
        results = found[0]["results"]
        return format_tool_call("submit", {"answer": results[0]["item_id"] if results else ""})


PROBES: dict[str, Callable[[], Agent]] = {
    "do_nothing": DoNothing,
    "submit_at_once": SubmitAtOnce,
    "random_tools": RandomTools,
    "yes_spam": YesSpam,
    "cancel_return_all": WriteEverything,
    "add_whole_catalog": lambda: WriteEverything("catalog"),
    "guess_ids": GuessIds,
    "lookup_then_ineligible": lambda: LookupThenConstant("ineligible"),
    "lookup_then_window": lambda: LookupThenConstant("ineligible: return window"),
    "lookup_then_zero": lambda: LookupThenConstant("0"),
    "lookup_then_delivered": lambda: LookupThenConstant("delivered"),
    "lookup_then_pending": lambda: LookupThenConstant("pending"),
    "confirm_oracle": ConfirmOracle,
    "cheapest_in_category": CheapestPick,
    "refuse_named_order": RefuseNamedOrder,
}
"""Every probe, by name."""

PROBE_FAMILIES: dict[str, tuple[str, ...]] = {
    "lookup_then_ineligible": ("cancel", "return", "exchange"),
    "lookup_then_window": ("return", "exchange", "policy_qa"),
    "lookup_then_zero": ("policy_qa",),
    "lookup_then_delivered": ("order_status",),
    "lookup_then_pending": ("order_status",),
    "confirm_oracle": ("cancel",),
    "cheapest_in_category": ("find_product",),
    "refuse_named_order": ("cancel", "return", "exchange", "policy_qa"),
}
"""The families each targeted probe attacks (the tests play it there too)."""
