"""The tools of ``rlvr/Ecom-v0``: JSON-schema definitions and the store-side implementations.

Lookups and writes run against a :class:`~rlvr.envs.ecom.world.World`; each returns JSON text
or raises :class:`ToolError` with a message the agent can act on (the env turns it into an error
observation and counts an invalid action). Ids are exact: there is no fuzzy matching. The user
tools (``ask_user``, ``ask_confirmation``, ``respond``) and ``submit`` are answered by the env.
"""

from __future__ import annotations

import ast
import json
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from rlvr.envs.ecom.world import CANCEL_REASONS, CATEGORY_BY_NAME, POLICY, World, returnable
from rlvr.envs.tool_calls import ToolParam, tool_definition
from rlvr.rewards.ecom import ID_RE

P = ToolParam
WRITE_TOOLS = (
    "add_to_cart",
    "remove_from_cart",
    "set_quantity",
    "checkout",
    "cancel_order",
    "return_items",
    "exchange_items",
)
USER_TOOLS = ("ask_user", "ask_confirmation", "respond")
ID_PATTERN = ID_RE
"""Every id the store shows, in any letter case; an id in a write or ``submit`` must have been
shown before (compare ids through :func:`rlvr.rewards.ecom.ids_in`)."""

TOOLS: tuple[dict[str, Any], ...] = (
    tool_definition(
        "search_products",
        "Search the catalog. Filters are exact: category, brand, "
        "price_max, rating_min, ship_days_max and any attribute of the category "
        '(e.g. {"color": "red"}). Results are sorted by price, cheapest first.',
        {
            "query": P("string", "Words of the title (optional).", False),
            "category": P("string", "A category name.", False),
            "filters": P("object", "Exact filters, see above.", False),
            "in_stock_only": P("boolean", "Hide out-of-stock items.", False),
            "page": P("integer", "Result page, from 1.", False),
        },
    ),
    tool_definition(
        "get_product",
        "A product and all its variant items.",
        {"product_id": P("string", "Product id, e.g. P123456.")},
    ),
    tool_definition(
        "get_item", "One variant item.", {"item_id": P("string", "Item id, e.g. I123456.")}
    ),
    tool_definition(
        "find_user_by_email", "The user id of a customer.", {"email": P("string", "Email.")}
    ),
    tool_definition(
        "find_user_by_name_zip",
        "The user id of a customer.",
        {"name": P("string", "Full name."), "zip": P("string", "Zip code.")},
    ),
    tool_definition(
        "get_user",
        "A customer's addresses, payment methods and order ids.",
        {"user_id": P("string", "User id, e.g. U12345.")},
    ),
    tool_definition(
        "get_order",
        "One order: status, date, lines, payment.",
        {"order_id": P("string", "Order id, e.g. O123456.")},
    ),
    tool_definition("view_cart", "The cart.", {}),
    tool_definition(
        "add_to_cart",
        "Add units of an item to the cart (write).",
        {"item_id": P("string", "Item id."), "quantity": P("integer", "Units, 1-99.")},
    ),
    tool_definition(
        "remove_from_cart",
        "Remove an item from the cart (write).",
        {"item_id": P("string", "Item id.")},
    ),
    tool_definition(
        "set_quantity",
        "Set the units of a cart item; 0 removes it (write).",
        {"item_id": P("string", "Item id."), "quantity": P("integer", "Units, 0-99.")},
    ),
    tool_definition(
        "checkout",
        "Order the cart (write).",
        {
            "payment_method_id": P("string", "A payment method id of the customer."),
            "address_id": P("string", "An address id of the customer."),
        },
    ),
    tool_definition(
        "cancel_order",
        "Cancel a pending order (write).",
        {
            "order_id": P("string", "Order id."),
            "reason": P("string", f"One of: {'; '.join(CANCEL_REASONS)}."),
        },
    ),
    tool_definition(
        "return_items",
        "Return delivered items (write).",
        {
            "order_id": P("string", "Order id."),
            "item_ids": P("array", "Item ids of the order."),
            "refund_to": P("string", "The order's payment method id or a gift card id."),
        },
    ),
    tool_definition(
        "exchange_items",
        "Exchange a delivered item for another variant of the same product (write).",
        {
            "order_id": P("string", "Order id."),
            "item_id": P("string", "Item id of the order."),
            "new_item_id": P("string", "The new variant."),
        },
    ),
    tool_definition(
        "policy_lookup",
        "The store policy, or its lines about a topic.",
        {"topic": P("string", "e.g. return, cancel, refund; empty for all.", False)},
    ),
    tool_definition(
        "calculate",
        "Evaluate arithmetic (+ - * / and parentheses).",
        {"expression": P("string", "e.g. (19.99 * 2) * 0.85")},
    ),
    tool_definition(
        "ask_user",
        "Ask the customer about one slot (an attribute such as color, "
        "price, rating, shipping, brand, quantity, email, reason, refund_method, "
        "payment_method, address, exchange) or 'next' for their next request.",
        {"slot": P("string", "The slot name.")},
    ),
    tool_definition(
        "ask_confirmation",
        "Ask the customer to confirm one exact write call before making it.",
        {"tool": P("string", "The write tool."), "arguments": P("object", "Its exact arguments.")},
    ),
    tool_definition("respond", "Say something to the customer.", {"text": P("string", "Text.")}),
    tool_definition(
        "submit",
        "End the conversation with the final answer (an item id, a "
        "status, an amount, 'ineligible', or empty).",
        {"answer": P("string", "The answer.", False)},
    ),
)
"""Every tool, as JSON schema (``info["tools"]``)."""


class ToolError(Exception):
    """A call the store refuses; the message says why."""


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=False)


def _get(table: Mapping[str, Any], key: Any, what: str) -> Any:
    if not isinstance(key, str) or key not in table:
        raise ToolError(f"There is no {what} {str(key)[:40]!r}.")
    return table[key]


def _matches(item: Any, category: str, filters: Mapping[str, Any]) -> bool:
    if category and item.category != category:
        return False
    attrs = dict(item.attributes)
    for key, want in filters.items():
        if key == "price_max" and not item.price <= _number(want, key):
            return False
        if key == "rating_min" and not item.rating >= _number(want, key):
            return False
        if key == "ship_days_max" and not item.ship_days <= _number(want, key):
            return False
        if key == "brand" and item.brand.lower() != str(want).lower():
            return False
        if key == "category" and item.category != str(want):
            return False
        if key in attrs and attrs[key].lower() != str(want).lower():
            return False
        if key not in attrs and key not in (
            "price_max",
            "rating_min",
            "ship_days_max",
            "brand",
            "category",
        ):
            return False
    return True


def _number(value: Any, key: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ToolError(f"Filter {key!r} needs a number, got {str(value)[:40]!r}.") from None


def search_products(world: World, args: Mapping[str, Any], page_size: int) -> str:
    category = str(args.get("category", "")).strip()
    if category and category not in CATEGORY_BY_NAME:
        raise ToolError(f"Unknown category {category[:40]!r}; see the system prompt for the list.")
    filters = args.get("filters") or {}
    if not isinstance(filters, dict):
        raise ToolError("'filters' must be a JSON object.")
    words = [w for w in re.findall(r"[a-z0-9]+", str(args.get("query", "")).lower())][:20]
    in_stock = bool(args.get("in_stock_only", False))
    hits = []
    for item in world.catalog.values():
        if in_stock and item.stock <= 0:
            continue
        if not _matches(item, category, filters):
            continue
        score = sum(w in item.title.lower() for w in words) if words else 1
        if score:
            hits.append((-score, item.price, item.item_id, item))
    hits.sort(key=lambda h: h[:3])
    page = args.get("page", 1)
    if not isinstance(page, int) or isinstance(page, bool) or page < 1:
        raise ToolError("'page' must be an integer >= 1.")
    shown = hits[(page - 1) * page_size : page * page_size]
    return _dump(
        {
            "total": len(hits),
            "page": page,
            "page_size": page_size,
            "results": [h[3].public() for h in shown],
        }
    )


def get_product(world: World, args: Mapping[str, Any]) -> str:
    product_id = args["product_id"]
    variants = [i.public() for i in world.catalog.values() if i.product_id == product_id]
    if not variants:
        raise ToolError(f"There is no product {str(product_id)[:40]!r}.")
    return _dump({"product_id": product_id, "variants": variants})


def get_user(world: World, args: Mapping[str, Any]) -> str:
    user = _get(world.users, args["user_id"], "user")
    return _dump(
        {
            "user_id": user.user_id,
            "name": user.name,
            "email": user.email,
            "zip": user.zip,
            "addresses": [vars(a) for a in user.addresses],
            "payment_methods": [
                {"payment_method_id": p.pm_id, "kind": p.kind, "detail": p.detail}
                for p in user.payments
            ],
            "order_ids": world.user_orders(user.user_id),
        }
    )


def get_order(world: World, args: Mapping[str, Any]) -> str:
    order = _get(world.db.orders, args["order_id"], "order")
    lines = [
        {
            **{k: v for k, v in world.catalog[i].public().items() if k != "in_stock"},
            "price": order["prices"][i],
            "quantity": q,
        }
        for i, q in order["items"].items()
    ]
    return _dump(
        {
            "order_id": args["order_id"],
            "status": order["status"],
            "date": order["date"],
            "lines": lines,
            "payment_method_id": order["payment"],
            "address_id": order["address"],
            "returned": order["returned"],
            "exchanged": order["exchanged"],
        }
    )


def find_user(world: World, args: Mapping[str, Any]) -> str:
    for user in world.users.values():
        if "email" in args and user.email == str(args["email"]).strip().lower():
            return _dump({"user_id": user.user_id})
        if "name" in args and (user.name.lower(), user.zip) == (
            str(args["name"]).strip().lower(),
            str(args.get("zip", "")).strip(),
        ):
            return _dump({"user_id": user.user_id})
    raise ToolError("No customer matches.")


def _quantity(value: Any, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= 99:
        raise ToolError(f"'quantity' must be an integer from {low} to 99.")
    return value


def add_to_cart(world: World, args: Mapping[str, Any]) -> str:
    item = _get(world.catalog, args["item_id"], "item")
    qty = _quantity(args["quantity"], 1)
    if item.stock <= 0:
        raise ToolError(f"Item {item.item_id} is out of stock.")
    world.db.cart[item.item_id] = world.db.cart.get(item.item_id, 0) + qty
    return view_cart(world, {})


def remove_from_cart(world: World, args: Mapping[str, Any]) -> str:
    _get(world.db.cart, args["item_id"], "cart item")
    del world.db.cart[args["item_id"]]
    return view_cart(world, {})


def set_quantity(world: World, args: Mapping[str, Any]) -> str:
    _get(world.db.cart, args["item_id"], "cart item")
    qty = _quantity(args["quantity"], 0)
    if qty:
        world.db.cart[args["item_id"]] = qty
    else:
        del world.db.cart[args["item_id"]]
    return view_cart(world, {})


def view_cart(world: World, args: Mapping[str, Any]) -> str:
    lines = [
        {
            "item_id": i,
            "title": world.catalog[i].title,
            "price": world.catalog[i].price,
            "quantity": q,
        }
        for i, q in world.db.cart.items()
    ]
    total = round(sum(line["price"] * line["quantity"] for line in lines), 2)
    return _dump({"cart": lines, "total": total})


def checkout(world: World, args: Mapping[str, Any]) -> str:
    if not world.db.cart:
        raise ToolError("The cart is empty.")
    owner = next(
        (
            u
            for u in world.users.values()
            if any(p.pm_id == args["payment_method_id"] for p in u.payments)
        ),
        None,
    )
    if owner is None:
        raise ToolError(f"There is no payment method {str(args['payment_method_id'])[:40]!r}.")
    if all(a.address_id != args["address_id"] for a in owner.addresses):
        raise ToolError("The address is not one of the payment method owner's addresses.")
    total = sum(world.catalog[i].price * q for i, q in world.db.cart.items())
    pm = next(p for p in owner.payments if p.pm_id == args["payment_method_id"])
    if pm.kind == "gift_card" and float(pm.detail.split("$")[1]) < total:
        raise ToolError("The gift card balance does not cover the cart.")
    oid = f"O{world.db.next_order}"
    world.db.next_order += 1
    world.db.orders[oid] = {
        "user": owner.user_id,
        "status": "pending",
        "date": "2026-06-01",
        "items": dict(world.db.cart),
        "prices": {i: world.catalog[i].price for i in world.db.cart},
        "payment": pm.pm_id,
        "address": args["address_id"],
        "returned": {},
        "refund_to": None,
        "exchanged": {},
        "cancel_reason": None,
    }
    world.db.cart.clear()
    return _dump({"order_id": oid, "status": "pending", "total": round(total, 2)})


def cancel_order(world: World, args: Mapping[str, Any]) -> str:
    order = _get(world.db.orders, args["order_id"], "order")
    if order["status"] != "pending":
        raise ToolError(
            f"Order {args['order_id']} is {order['status']}; only pending orders can be cancelled."
        )
    if args["reason"] not in CANCEL_REASONS:
        raise ToolError(f"The reason must be one of: {'; '.join(CANCEL_REASONS)}.")
    order["status"], order["cancel_reason"] = "cancelled", args["reason"]
    return _dump({"order_id": args["order_id"], "status": "cancelled"})


def return_items(world: World, args: Mapping[str, Any]) -> str:
    order = _get(world.db.orders, args["order_id"], "order")
    if order["status"] != "delivered":
        raise ToolError(f"Order {args['order_id']} is {order['status']}, not delivered.")
    ids = args["item_ids"]
    if not ids or any(
        not isinstance(i, str) or i not in order["items"] or i in order["returned"] for i in ids
    ):
        raise ToolError("'item_ids' must list items of the order that are not returned yet.")
    user = world.users[order["user"]]
    refund_ok = args["refund_to"] == order["payment"] or any(
        p.pm_id == args["refund_to"] and p.kind == "gift_card" for p in user.payments
    )
    if not refund_ok:
        raise ToolError("The refund goes to the order's payment method or a gift card of the user.")
    for i in ids:
        order["returned"][i] = order["items"][i]
    order["refund_to"] = args["refund_to"]
    return _dump({"order_id": args["order_id"], "returned": list(ids)})


def exchange_items(world: World, args: Mapping[str, Any]) -> str:
    order = _get(world.db.orders, args["order_id"], "order")
    if order["status"] != "delivered" or args["item_id"] not in order["items"]:
        raise ToolError("Only items of a delivered order can be exchanged.")
    old = world.catalog[args["item_id"]]
    new = _get(world.catalog, args["new_item_id"], "item")
    if new.product_id != old.product_id or new.item_id == old.item_id or new.stock <= 0:
        raise ToolError("The new item must be another in-stock variant of the same product.")
    order["exchanged"][old.item_id] = new.item_id
    return _dump({"order_id": args["order_id"], "exchanged": {old.item_id: new.item_id}})


def policy_lookup(world: World, args: Mapping[str, Any]) -> str:
    topic = str(args.get("topic", "")).strip().lower()
    lines = [line for line in POLICY.split("\n- ") if topic in line.lower()] if topic else [POLICY]
    return "\n- ".join(lines) if lines else f"The policy says nothing about {topic[:40]!r}."


_OPS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return float(_OPS[type(node.op)](_eval(node.left), _eval(node.right)))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return float(_OPS[type(node.op)](_eval(node.operand)))
    raise ToolError("Only numbers, + - * / and parentheses are allowed.")


def calculate(world: World, args: Mapping[str, Any]) -> str:
    expression = str(args["expression"])[:200]
    try:
        value = _eval(ast.parse(expression, mode="eval").body)
    except (SyntaxError, ZeroDivisionError, RecursionError, OverflowError):
        raise ToolError(f"Cannot evaluate {expression[:60]!r}.") from None
    return f"{value:.4f}".rstrip("0").rstrip(".")


STORE_TOOLS: dict[str, Callable[[World, Mapping[str, Any]], str]] = {
    "get_product": get_product,
    "get_item": lambda w, a: _dump(_get(w.catalog, a["item_id"], "item").public()),
    "find_user_by_email": find_user,
    "find_user_by_name_zip": find_user,
    "get_user": get_user,
    "get_order": get_order,
    "view_cart": view_cart,
    "add_to_cart": add_to_cart,
    "remove_from_cart": remove_from_cart,
    "set_quantity": set_quantity,
    "checkout": checkout,
    "cancel_order": cancel_order,
    "return_items": return_items,
    "exchange_items": exchange_items,
    "policy_lookup": policy_lookup,
    "calculate": calculate,
}
"""Every tool that runs against the store, except ``search_products`` (it takes a page size)."""


def write_violation(world: World, name: str, args: Mapping[str, Any]) -> str | None:
    """The policy rule a successful write broke (besides confirmation and unseen ids)."""
    if name in ("return_items", "exchange_items"):
        ids = args["item_ids"] if name == "return_items" else [args["item_id"]]
        if any(not returnable(world, args["order_id"], i) for i in ids):
            return f"{name} on an item the return policy excludes"
    return None
