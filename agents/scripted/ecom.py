"""Scripted solver of ``rlvr/Ecom-v0`` that reads only the dialogue.

:class:`EcomSolver` keeps no state: every turn it rereads the system prompt (category schemas,
the policy), the customer's messages (parsed with the env's public templates,
:mod:`rlvr.envs.ecom.user_sim`) and the JSON tool results, and makes the next call of a fixed
procedure: identify the customer, ask for each slot the customer has not told, look up,
confirm the exact write, write, ask for the next request, submit. It applies the policy it
read (return window, final sale, restocking fee) itself and answers a request the policy
forbids with ``ineligible:``, the order id, what blocks it and the fact that proves it.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rlvr.agents.base import Agent
from rlvr.envs.ecom.user_sim import ANOTHER, CLAUSES, INTROS, NO_MORE, SWITCH
from rlvr.envs.tool_calls import ToolCall, format_tool_call, parse_tool_call
from rlvr.envs.types import Message

PRODUCT_SLOTS = ("price", "rating", "shipping", "brand")
FILTER_NAMES = {"price": "price_max", "rating": "rating_min", "shipping": "ship_days_max"}
NEEDS = {
    "cancel": ("reason",),
    "return": ("refund_method",),
    "exchange": ("exchange",),
    "checkout": ("payment_method", "address"),
}


VALUE_PATTERNS = {
    "quantity": r"\d+",
    "price": r"\d+(?:\.\d+)?",
    "rating": r"\d+(?:\.\d+)?",
    "shipping": r"\d+",
    "email": r"[^\s@]+@\S+?",
}


def _intro_pattern(template: str) -> re.Pattern[str]:
    end = max(template.rfind("}"), 0)
    stop = min(
        (i for i in (template.find(".", end), template.find("?", end)) if i >= 0),
        default=len(template) - 1,
    )
    text = re.escape(template[: stop + 1])
    text = text.replace(r"\{subject\}", r"(?P<subject>.+?)").replace(r"\{n\}", r"(?P<n>\d+)")
    return re.compile(text)


INTRO_PATTERNS = {kind: _intro_pattern(t) for kind, t in INTROS.items()}


@functools.lru_cache(maxsize=8)
def _clause_patterns(attributes: tuple[str, ...]) -> list[tuple[str, re.Pattern[str]]]:
    slot_group = "(?P<slot>" + "|".join(re.escape(a) for a in attributes) + ")"
    out = []
    for kind, templates in CLAUSES.items():
        for template in templates:
            value = VALUE_PATTERNS.get(kind, r"(?:(?!\.\s)[^;?!])+?")
            text = re.escape(template).replace(r"\{value\}", f"(?P<value>{value})")
            text = text.replace(r"\{slot\}", slot_group)
            out.append((kind, re.compile(r"(?:^|(?<=\s))" + text + r"(?=\s|$)")))
    return out


@functools.lru_cache(maxsize=4096)
def parse_user_text(
    text: str, attributes: tuple[str, ...]
) -> tuple[int, tuple[str, str, int] | None, tuple[tuple[str, str, str], ...]]:
    """The request count, the request intro ``(kind, subject, requirements)`` and the
    ``(kind, slot, value)`` clauses of one customer message."""
    count = re.search(r"I have (\d+) requests today", text)
    intro = None
    for kind, pattern in INTRO_PATTERNS.items():
        match = pattern.search(text)
        if match:
            groups = match.groupdict()
            intro = (kind, groups.get("subject") or "cart", int(groups.get("n") or 0))
            break
    clauses = []
    for kind, pattern in _clause_patterns(attributes):
        for m in pattern.finditer(text):
            slot = m.group("slot") if kind in ("attr", "exchange") else kind
            clauses.append((kind, slot, m.group("value")))
    return int(count.group(1)) if count else 0, intro, tuple(clauses)


@functools.lru_cache(maxsize=1024)
def _load(text: str) -> Any:
    """A tool result's JSON (cached: the solver rereads the whole dialogue every turn and
    never changes what it read)."""
    return json.loads(text)


@dataclass
class Request:
    kind: str
    subject: str
    requirements: int
    slots: dict[str, str] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)
    done: bool = False
    confirmed: list[tuple[str, str]] = field(default_factory=list)
    answer: str | None = None


@dataclass
class View:
    """What the dialogue says so far."""

    categories: dict[str, list[str]]
    policy: str
    requests: list[Request] = field(default_factory=list)
    total: int = 1
    finished: bool = False
    email: str | None = None
    user_id: str | None = None
    user: dict[str, Any] | None = None
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    searches: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejected: list[tuple[str, str]] = field(default_factory=list)


def read_system(text: str) -> tuple[dict[str, list[str]], str]:
    categories = {
        m.group(1): [a.strip() for a in m.group(2).split(",")]
        for m in re.finditer(r"^- ([\w-]+): ([\w, -]+)$", text, re.MULTILINE)
    }
    return categories, text


class EcomSolver(Agent):
    """Solves ``rlvr/Ecom-v0`` from the dialogue alone (see the module docstring)."""

    name = "scripted-ecom"

    def act(self, dialogue: Sequence[Message]) -> str:
        try:
            view = self.read(dialogue)
            name, args = self.decide(view)
        except (ValueError, KeyError, IndexError, TypeError, StopIteration):
            name, args = "submit", {"answer": ""}
        return format_tool_call(name, args)

    # ------------------------------------------------------------------ reading

    def read(self, dialogue: Sequence[Message]) -> View:
        categories, policy = read_system(dialogue[0].content if dialogue else "")
        view = View(categories, policy)
        attributes = sorted(
            {a for attrs in categories.values() for a in attrs}, key=len, reverse=True
        )
        self._attributes = (*attributes, *PRODUCT_SLOTS, "quantity")
        call: ToolCall | None = None
        for message in dialogue[1:]:
            if message.role == "assistant":
                parsed = parse_tool_call(message.content)
                call = parsed if isinstance(parsed, ToolCall) else None
            elif message.role == "user":
                self._read_user(view, message.content, call)
                call = None
            elif message.role == "tool" and call is not None:
                self._read_tool(view, call, message.content)
                call = None
        return view

    def _read_user(self, view: View, text: str, call: ToolCall | None) -> None:
        if call is not None and call.name == "ask_confirmation" and view.requests:
            proposal = (
                str(call.arguments.get("tool")),
                json.dumps(dict(call.arguments.get("arguments", {})), sort_keys=True),
            )
            if text.startswith(SWITCH):  # a goal switch: the new value replaces the old one
                for _, slot, value in parse_user_text(text, self._attributes)[2]:
                    view.requests[-1].slots[slot] = value
                return
            answers = view.requests[-1].confirmed if text.startswith("Yes") else view.rejected
            answers.append(proposal)
            return
        if call is not None and call.name == "ask_user" and view.requests:
            view.requests[-1].asked.append(str(call.arguments.get("slot")))
        if text.startswith(NO_MORE):
            view.finished = True
            return
        total, intro, clauses = parse_user_text(text, self._attributes)
        if total:
            view.total = total
        if intro is not None and (not view.requests or text.startswith(ANOTHER) or call is None):
            view.requests.append(Request(*intro))
        for kind, slot, value in clauses:
            if kind == "email":
                view.email = value
            elif kind == "exchange" and view.requests:
                view.requests[-1].slots["exchange"] = f"{slot}={value}"
            elif view.requests:
                view.requests[-1].slots.setdefault(slot, value)

    def _read_tool(self, view: View, call: ToolCall, text: str) -> None:
        if text.startswith("Error") or not text.startswith("{"):
            return
        data = _load(text)
        args = dict(call.arguments)
        if call.name.startswith("find_user"):
            view.user_id = data["user_id"]
        elif call.name == "get_user":
            view.user = data
        elif call.name == "get_order":
            view.orders[data["order_id"]] = data
        elif call.name == "get_product":
            view.products[data["product_id"]] = data
        elif call.name == "search_products":
            view.searches[json.dumps(args, sort_keys=True)] = data
        elif (
            call.name
            in ("add_to_cart", "checkout", "cancel_order", "return_items", "exchange_items")
            and view.requests
        ):
            view.requests[-1].done = True

    # ------------------------------------------------------------------ deciding

    def decide(self, view: View) -> tuple[str, dict[str, Any]]:
        """The next call, from what the dialogue says."""
        if not view.requests:
            return "submit", {"answer": ""}
        request = view.requests[-1]
        if request.kind not in ("find", "cart") and view.user is None:
            if view.user_id:
                return "get_user", {"user_id": view.user_id}
            if view.email:
                return "find_user_by_email", {"email": view.email}
            return "ask_user", {"slot": "email"}
        if not request.done:
            handler = self._product if request.kind in ("find", "cart") else self._order
            return handler(view, request)
        if len(view.requests) < view.total and not view.finished:
            return "ask_user", {"slot": "next"}
        return "submit", {"answer": ""}

    def _ask_missing(
        self, request: Request, slots: Sequence[str]
    ) -> tuple[str, dict[str, Any]] | None:
        for slot in slots:
            if slot not in request.slots:
                if slot in request.asked:
                    return "submit", {"answer": ""}
                return "ask_user", {"slot": slot}
        return None

    def _write(
        self, view: View, request: Request, tool: str, args: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        proposal = (tool, json.dumps(args, sort_keys=True))
        if proposal in request.confirmed:
            return tool, args
        if proposal in view.rejected:
            return "submit", {"answer": ""}
        return "ask_confirmation", {"tool": tool, "arguments": args}

    def _product(self, view: View, request: Request) -> tuple[str, dict[str, Any]]:
        known = {s: v for s, v in request.slots.items() if s != "quantity"}
        if len(known) < request.requirements:
            for slot in [*view.categories.get(request.subject, []), *PRODUCT_SLOTS]:
                if slot not in known and slot not in request.asked:
                    return "ask_user", {"slot": slot}
        filters: dict[str, Any] = {}
        for slot, value in known.items():
            key = FILTER_NAMES.get(slot, slot)
            filters[key] = (
                int(value)
                if key == "ship_days_max"
                else float(value)
                if key in ("price_max", "rating_min")
                else value
            )
        search = {"category": request.subject, "filters": filters, "in_stock_only": True}
        found = view.searches.get(json.dumps(search, sort_keys=True))
        if found is None:
            return "search_products", search
        if not found["results"]:
            return "submit", {"answer": ""}
        item = found["results"][0]["item_id"]
        if request.kind == "find":
            return "submit", {"answer": item}
        quantity = int(request.slots.get("quantity", "1"))
        return self._write(view, request, "add_to_cart", {"item_id": item, "quantity": quantity})

    def _order(self, view: View, request: Request) -> tuple[str, dict[str, Any]]:
        assert view.user is not None
        if request.kind == "checkout":
            return self._checkout(view, request)
        found = [
            (o, line)
            for o in view.orders.values()
            for line in o["lines"]
            if line["title"] == request.subject
        ]
        if not found:
            for oid in view.user["order_ids"]:
                if oid not in view.orders:
                    return "get_order", {"order_id": oid}
            return "submit", {"answer": ""}
        order, line = found[0]
        rules = Policy.read(view.policy)
        if request.kind == "status":
            return "submit", {"answer": f"{order['order_id']} {order['status']}"}
        blocker = rules.blocker(order, line)
        if request.kind == "refund":
            answer = f"{rules.refund(order, line):.2f}"
            return "submit", {"answer": refusal(order, blocker) if blocker else answer}
        if request.kind == "cancel":
            if order["status"] != "pending":
                return "submit", {"answer": refusal(order, order["status"])}
            missing = self._ask_missing(request, ("reason",))
            args = {"order_id": order["order_id"], "reason": request.slots.get("reason", "")}
            return missing or self._write(view, request, "cancel_order", args)
        if blocker:
            return "submit", {"answer": refusal(order, blocker)}
        if request.kind == "return":
            missing = self._ask_missing(request, ("refund_method",))
            if missing:
                return missing
            kind = request.slots["refund_method"].replace(" ", "_")
            methods = {p["payment_method_id"]: p["kind"] for p in view.user["payment_methods"]}
            pm = (
                order["payment_method_id"]
                if methods.get(order["payment_method_id"]) == kind
                else next(k for k, v in methods.items() if v == kind)
            )
            args = {"order_id": order["order_id"], "item_ids": [line["item_id"]], "refund_to": pm}
            return self._write(view, request, "return_items", args)
        return self._exchange(view, request, order, line)

    def _exchange(
        self, view: View, request: Request, order: dict[str, Any], line: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        missing = self._ask_missing(request, ("exchange",))
        if missing:
            return missing
        product = view.products.get(line["product_id"])
        if product is None:
            return "get_product", {"product_id": line["product_id"]}
        attr, _, value = request.slots["exchange"].partition("=")
        wanted = {**line["attributes"], attr: value}
        new = next(v["item_id"] for v in product["variants"] if v["attributes"] == wanted)
        args = {"order_id": order["order_id"], "item_id": line["item_id"], "new_item_id": new}
        return self._write(view, request, "exchange_items", args)

    def _checkout(self, view: View, request: Request) -> tuple[str, dict[str, Any]]:
        assert view.user is not None
        missing = self._ask_missing(request, NEEDS["checkout"])
        if missing:
            return missing
        kind = request.slots["payment_method"].replace(" ", "_")
        pm = next(p["payment_method_id"] for p in view.user["payment_methods"] if p["kind"] == kind)
        address = next(
            a["address_id"]
            for a in view.user["addresses"]
            if a["street"] == request.slots["address"]
        )
        return self._write(
            view, request, "checkout", {"address_id": address, "payment_method_id": pm}
        )


def refusal(order: dict[str, Any], blocker: str) -> str:
    """The policy's answer to a forbidden request: the order and what blocks it."""
    return f"ineligible: {order['order_id']} {blocker}"


@dataclass(frozen=True)
class Policy:
    """The rules the solver reads from the policy text of the system prompt."""

    today: dt.date
    window: int
    final_sale: tuple[str, ...]
    fee: float
    fee_categories: tuple[str, ...]

    @classmethod
    def read(cls, text: str) -> Policy:
        window = re.search(r"within (\d+) days of delivery \(today is (\d{4}-\d\d-\d\d)\)", text)
        final = re.search(r"items of the categories (.+?) are final sale", text)
        fee = re.search(r"minus a (\d+)% restocking fee for\s+the categories (.+?);", text)
        if window is None or final is None or fee is None:
            raise ValueError("the policy text is not readable")
        return cls(
            dt.date.fromisoformat(window.group(2)),
            int(window.group(1)),
            tuple(c.strip() for c in final.group(1).split(",")),
            int(fee.group(1)) / 100,
            tuple(c.strip() for c in fee.group(2).split(",")),
        )

    def blocker(self, order: dict[str, Any], line: dict[str, Any]) -> str | None:
        """What keeps ``line`` of ``order`` from a return or exchange, with the fact that
        proves it (``None``: nothing)."""
        if line["category"] in self.final_sale:
            return f"final sale {line['item_id']}"
        age = (self.today - dt.date.fromisoformat(order["date"])).days
        if order["status"] != "delivered" or age > self.window:
            return f"return window since {order['date']} ({age} days)"
        return None

    def returnable(self, order: dict[str, Any], line: dict[str, Any]) -> bool:
        return self.blocker(order, line) is None

    def refund(self, order: dict[str, Any], line: dict[str, Any]) -> float:
        if not self.returnable(order, line):
            return 0.0
        fee = self.fee if line["category"] in self.fee_categories else 0.0
        return round(line["price"] * line["quantity"] * (1 - fee), 2)
