"""Task families of ``rlvr/Ecom-v0``: each builds the hidden goal and plants near misses.

A scenario is a list of :class:`Step` (one request of the user each; a multi-intent journey
has several). A product request plants the target plus ``2 + 2d`` near-miss distractors, each
violating exactly one constraint, and makes every other item that meets all constraints dearer
than the target, so "the cheapest in-stock item meeting every requirement" is unique. Order
requests plant an order whose referenced product title appears on exactly one line of the
user's orders. A policy trap (probability ``p_trap``) makes the wanted write forbidden: the
order of a cancel is processed, shipped, delivered or cancelled (uniformly); a return,
exchange or refund question hits the return window or a final-sale item (half each). The
trap share is ``min(p_trap, TRAP_SHARE_MAX)``. The customer still asks for (and would confirm)
the forbidden write (:attr:`Step.wish`); the goal has no write and the answer is
:func:`refusal`: the order id, what blocks it and the fact that proves it (the status; the
final-sale item id; the delivery date or the days since delivery). The gold
writes of every step are tool calls; the env replays them on a copy of the store to get the
goal's state diff.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Any

from faker import Faker

from rlvr.envs.ecom.difficulty import Theta
from rlvr.envs.ecom.world import (
    CANCEL_REASONS,
    CATEGORIES,
    CATEGORY_BY_NAME,
    ELECTRONICS,
    FINAL_SALE,
    Item,
    User,
    World,
    add_order,
    days_since,
    make_product,
    make_world,
    refund_amount,
)

FAMILIES = (
    "find_product",
    "cart_build",
    "checkout",
    "cancel",
    "return",
    "exchange",
    "order_status",
    "policy_qa",
    "journey",
)
"""Every task family; ``family="mixed"`` draws one per episode."""
PRODUCT_SLOTS = ("price", "rating", "shipping", "brand")
"""Constraint slots every category has (besides its attributes)."""
INELIGIBLE = "ineligible"
BLOCKED_STATUSES = ("processed", "shipped", "delivered", "cancelled")
"""The states of a cancel trap's order; the refusal must name the one that applies."""


TRAP_SHARE_MAX = 0.03
"""The most a trap's share of an order request may be: an always-refuse policy wins at most
the traps, and must also pick the right blocker among (about) equally likely ones, so its
expected reward stays below 0.05 at every level."""


def refusal(order_id: str, blocker: str) -> str:
    """The expected answer to a forbidden request: the order and what blocks it."""
    return f"{INELIGIBLE}: {order_id} {blocker}"


def blocker_evidence(world: World, order_id: str, item_id: str, final: bool) -> str:
    """A return, exchange or refund blocker with the fact that proves it, which only reading
    the order tells: the final-sale line's item id, or the delivery date and the days since."""
    if final:
        return f"final sale {item_id}"
    date = world.db.orders[order_id]["date"]
    return f"return window since {date} ({days_since(date)} days)"


@dataclass(frozen=True)
class Constraint:
    slot: str
    """An attribute name or one of ``price``, ``rating``, ``shipping``, ``brand``."""
    value: str
    """Exact value (attributes, brand), bound (price: at most, rating: at least, shipping:
    at most days), as text."""


@dataclass(frozen=True)
class Step:
    """One request of the user: what they say, what they hold back, what must happen."""

    kind: str
    """find, cart, checkout, cancel, return, exchange, status, refund."""
    subject: str
    """The category (product requests) or the referenced product title (order requests)."""
    slots: tuple[tuple[str, str], ...]
    """Every slot the user can tell, in order (``quantity``, constraints, ``reason``...)."""
    revealed: tuple[str, ...]
    """Slots told in the request's first message; the rest come from ``ask_user``."""
    requirements: int
    """How many product constraints the user has (told in the first message)."""
    writes: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
    """The gold write calls ``(tool, sorted args)``."""
    answer: str | None
    """The expected ``submit`` answer, when the step asks a question."""
    target: str | None = None
    """The wanted item (product requests) or the order (order requests)."""
    ref_lines: int = 0
    """Reference-dialogue calls of this step besides asks (lookups, confirmations, writes)."""
    wish: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] | None = None
    """The write calls the customer asks for and would confirm, when they differ from
    ``writes`` (a policy trap: the customer wants a forbidden write; the goal has none)."""
    switch: tuple[str, str, str] | None = None
    """A goal switch ``(slot, new value, first target)``: the user asked for the first target,
    and changes ``slot`` to ``new value`` at the first confirmation; ``target`` and ``writes``
    are the switched goal's."""


@dataclass(frozen=True)
class Scenario:
    family: str
    user: User
    steps: tuple[Step, ...]
    needs_identity: bool
    answer: str | None
    answer_kind: str
    """``item`` (an item id), ``number`` (an amount), ``keyed`` (an order id with a status, or
    a refusal ``ineligible: <order id> <blocker>``, see :func:`rlvr.rewards.ecom.keyed_matches`)
    or ``none``."""
    t_oracle: int


def satisfies(item: Item, constraints: tuple[Constraint, ...]) -> bool:
    """Whether ``item`` meets every constraint."""
    attrs = dict(item.attributes)
    for c in constraints:
        if c.slot == "price" and not item.price <= float(c.value):
            return False
        if c.slot == "rating" and not item.rating >= float(c.value):
            return False
        if c.slot == "shipping" and not item.ship_days <= int(c.value):
            return False
        if c.slot == "brand" and item.brand != c.value:
            return False
        if c.slot in attrs and attrs[c.slot] != c.value:
            return False
    return True


def _bound(rng: random.Random, target: Item, slot: str) -> str:
    if slot == "price":
        return f"{math.ceil(target.price * (1 + 0.3 * rng.random()))}"
    if slot == "rating":
        return f"{math.floor(max(1.0, target.rating - rng.random()) * 2) / 2:.1f}"
    if slot == "shipping":
        return f"{target.ship_days + rng.randint(0, 2)}"
    return target.brand if slot == "brand" else target.attr(slot)


def _violate(rng: random.Random, world: World, target: Item, c: Constraint) -> Item:
    """A fresh item like ``target`` that breaks ``c`` and is a bit cheaper (unless price)."""
    category = CATEGORY_BY_NAME[target.category]
    attrs = dict(target.attributes)
    price, rating, ship, brand = (
        max(1.99, target.price - rng.randint(1, 5)),
        target.rating,
        target.ship_days,
        target.brand,
    )
    if c.slot == "price":
        price = float(c.value) + rng.randint(1, 15) + 0.99
    elif c.slot == "rating":
        rating = round(max(0.5, float(c.value) - 0.1 - rng.random()), 1)
    elif c.slot == "shipping":
        ship = int(c.value) + rng.randint(1, 4)
    elif c.slot == "brand":
        brand = rng.choice([b for b in world.brands if b != target.brand] or ["Other"])
    elif c.slot in attrs:
        values = dict(category.attributes)[c.slot]
        attrs[c.slot] = rng.choice([v for v in values if v != c.value])
    base = make_product(rng, world.catalog, world.brands, category, 1, 0.0)[0]
    item = replace(
        base,
        attributes=tuple(attrs.items()),
        price=price,
        rating=rating,
        ship_days=ship,
        brand=brand,
        title=f"{brand} {base.title.split(' ', 1)[1]}",
    )
    world.catalog[item.item_id] = item
    return item


def plant_want(
    rng: random.Random, world: World, theta: Theta
) -> tuple[Item, tuple[Constraint, ...]]:
    """A wanted in-stock item, its constraints, near misses, and a unique cheapest answer."""
    category = rng.choice([c for c in CATEGORIES if c.name not in world.used_categories])
    world.used_categories.append(category.name)
    product = make_product(rng, world.catalog, world.brands, category, theta.variants, 0.0)
    target = product[0]
    slots = [name for name, _ in category.attributes] + list(PRODUCT_SLOTS)
    chosen = rng.sample(slots, min(theta.constraints, len(slots)))
    if chosen == ["price"]:  # alone, a price cap would make the target the category's cheapest
        chosen = rng.sample(slots[:-4] + slots[-3:], 1)
    constraints = tuple(Constraint(s, _bound(rng, target, s)) for s in chosen)
    for k in range(theta.distractors):
        _violate(rng, world, target, constraints[k % len(constraints)])
    if rng.random() < theta.p_oos:
        oos = _violate(rng, world, target, Constraint("__none__", ""))
        world.catalog[oos.item_id] = replace(oos, stock=0)
    make_unique(rng, world, target.item_id, constraints, ())
    return world.catalog[target.item_id], constraints


def make_unique(
    rng: random.Random,
    world: World,
    target_id: str,
    constraints: tuple[Constraint, ...],
    keep: tuple[str, ...],
) -> None:
    """Reprice every other in-stock item meeting ``constraints`` above the target."""
    target = world.catalog[target_id]
    for item_id, item in list(world.catalog.items()):
        if (
            item_id != target_id
            and item_id not in keep
            and item.category == target.category
            and item.stock > 0
            and item.price <= target.price
            and satisfies(item, constraints)
        ):
            world.catalog[item_id] = replace(item, price=target.price + rng.randint(1, 20))


def step_constraints(step: Step, *, switched: bool = True) -> tuple[Constraint, ...]:
    """The product constraints of a product request (after its goal switch, if any)."""
    changes = dict([step.switch[:2]]) if step.switch and switched else {}
    return tuple(Constraint(s, changes.get(s, v)) for s, v in step.slots if s != "quantity")


def _reveal(
    rng: random.Random, theta: Theta, slots: list[tuple[str, str]], always: tuple[str, ...]
) -> tuple[str, ...]:
    return tuple(s for s, _ in slots if s in always or rng.random() >= theta.p_missing)


def product_step(rng: random.Random, world: World, theta: Theta, kind: str) -> Step:
    target, constraints = plant_want(rng, world, theta)
    qty = rng.randint(1, 3) if kind == "cart" and rng.random() < min(0.5, 0.1 * theta.level) else 1
    slots = ([("quantity", str(qty))] if kind == "cart" else []) + [
        (c.slot, c.value) for c in constraints
    ]
    revealed = _reveal(rng, theta, slots, ("quantity",))
    first, switch = target, _plan_switch(rng, world, theta, kind, target, constraints)
    if switch is not None:
        target = world.catalog[switch[2]]
    writes = (
        (("add_to_cart", (("item_id", target.item_id), ("quantity", qty))),)
        if kind == "cart"
        else ()
    )
    unrevealed = (
        len(CATEGORY_BY_NAME[target.category].attributes)
        + len(PRODUCT_SLOTS)
        - sum(1 for s in revealed if s != "quantity")
    )
    return Step(
        kind,
        target.category,
        tuple(slots),
        revealed,
        len(constraints),
        writes,
        target.item_id if kind == "find" else None,
        target.item_id,
        ref_lines=1 + 2 * (kind == "cart") + unrevealed + 2 * (switch is not None),
        switch=None if switch is None else (switch[0], switch[1], first.item_id),
    )


def _plan_switch(
    rng: random.Random,
    world: World,
    theta: Theta,
    kind: str,
    target: Item,
    constraints: tuple[Constraint, ...],
) -> tuple[str, str, str] | None:
    """A goal switch ``(slot, new value, new target)`` for a cart request, or ``None``: the
    user changes one wanted attribute when first asked to confirm; the new target is the
    unique cheapest item under the changed constraints."""
    attrs = [c for c in constraints if c.slot in dict(target.attributes)]
    if kind != "cart" or not attrs or rng.random() >= theta.p_switch:
        return None
    changed = rng.choice(attrs)
    other = _violate(rng, world, target, changed)
    new_value = other.attr(changed.slot)
    switched = tuple(Constraint(c.slot, new_value) if c is changed else c for c in constraints)
    make_unique(rng, world, other.item_id, switched, (target.item_id,))
    return changed.slot, new_value, other.item_id


def _fresh_line(
    rng: random.Random,
    world: World,
    user: User,
    theta: Theta,
    category_names: tuple[str, ...] | None = None,
    variants: int = 1,
) -> Item:
    """A new product whose title is on none of the user's orders; returns its first item."""
    titles = {
        world.catalog[i].title
        for o in world.user_orders(user.user_id)
        for i in world.db.orders[o]["items"]
    }
    while True:
        pool = [c for c in CATEGORIES if category_names is None or c.name in category_names]
        items = make_product(rng, world.catalog, world.brands, rng.choice(pool), variants, 0.0)
        if items and items[0].title not in titles and len(items) >= min(variants, 2):
            return items[0]


def _filler(
    rng: random.Random, world: World, user: User, theta: Theta, count: int
) -> dict[str, int]:
    return {_fresh_line(rng, world, user, theta).item_id: rng.randint(1, 2) for _ in range(count)}


def _order_with(
    rng: random.Random,
    world: World,
    user: User,
    theta: Theta,
    item: Item,
    status: str,
    days_ago: int,
    qty: int = 1,
) -> str:
    lines = {item.item_id: qty, **_filler(rng, world, user, theta, rng.randint(0, 2))}
    return add_order(rng, world, user, lines, status, days_ago)


def order_step(
    rng: random.Random, world: World, user: User, theta: Theta, kind: str, trap_ok: bool
) -> Step:
    """An order request; a near-miss order in the same state makes "do it to every order" fail."""
    decoy = {"cancel": "pending", "return": "delivered", "exchange": "delivered"}.get(kind)
    for _ in range(3 if kind == "cancel" else 1 if decoy else 0):
        add_order(rng, world, user, _filler(rng, world, user, theta, 1), decoy, rng.randint(2, 20))
    trap = trap_ok and rng.random() < min(theta.p_trap, TRAP_SHARE_MAX)
    if kind == "cancel":
        return _cancel_step(rng, world, user, theta, trap)
    final = trap and rng.random() < 0.5
    if kind in ("return", "refund"):
        return _return_step(rng, world, user, theta, kind, trap, final)
    if kind == "exchange":
        return _exchange_step(rng, world, user, theta, trap, final)
    item = _fresh_line(rng, world, user, theta)
    status = rng.choice(("pending", "processed", "shipped", "delivered", "cancelled"))
    oid = _order_with(rng, world, user, theta, item, status, rng.randint(0, 20))
    return _order_step(rng, theta, kind, item, oid, [], (), f"{oid} {status}")


def _cancel_step(rng: random.Random, world: World, user: User, theta: Theta, trap: bool) -> Step:
    """Cancel a pending order, or (a trap) refuse one that is past pending."""
    item = _fresh_line(rng, world, user, theta)
    status = rng.choice(BLOCKED_STATUSES) if trap else "pending"
    oid = _order_with(rng, world, user, theta, item, status, rng.randint(0, 3))
    reason = rng.choice(CANCEL_REASONS)
    slots = [("reason", reason)]
    wish: tuple[Any, ...] = (("cancel_order", (("order_id", oid), ("reason", reason))),)
    answer = refusal(oid, status) if trap else None
    return _order_step(
        rng, theta, "cancel", item, oid, slots, () if trap else wish, answer, wish=wish
    )


def _return_step(
    rng: random.Random,
    world: World,
    user: User,
    theta: Theta,
    kind: str,
    trap: bool,
    final: bool,
) -> Step:
    """Return a delivered line (or ask for its refund), or refuse a final-sale/late one."""
    cats = (
        FINAL_SALE
        if final
        else (
            ELECTRONICS
            if kind == "refund" and rng.random() < 0.5
            else tuple(c.name for c in CATEGORIES if c.name not in FINAL_SALE)
        )
    )
    item = _fresh_line(rng, world, user, theta, cats)
    days = rng.randint(40, 90) if trap and not final else rng.randint(2, 28)
    oid = _order_with(rng, world, user, theta, item, "delivered", days, rng.randint(1, 2))
    blocked = refusal(oid, blocker_evidence(world, oid, item.item_id, final)) if trap else None
    if kind == "refund":
        answer = blocked or f"{refund_amount(world, oid, item.item_id):.2f}"
        return _order_step(rng, theta, kind, item, oid, [], (), answer)
    payments = [
        p
        for p in user.payments
        if p.kind == "gift_card" or p.pm_id == world.db.orders[oid]["payment"]
    ]
    pm = rng.choice(payments)
    slots = [("refund_method", pm.kind.replace("_", " "))]
    args = (("item_ids", (item.item_id,)), ("order_id", oid), ("refund_to", pm.pm_id))
    wish = (("return_items", args),)
    return _order_step(rng, theta, kind, item, oid, slots, () if trap else wish, blocked, wish=wish)


def _exchange_step(
    rng: random.Random, world: World, user: User, theta: Theta, trap: bool, final: bool
) -> Step:
    """Exchange a delivered line for the variant differing in one attribute, or refuse."""
    cats = FINAL_SALE if final else tuple(c.name for c in CATEGORIES if c.name not in FINAL_SALE)
    while True:
        item = _fresh_line(rng, world, user, theta, cats, variants=max(3, theta.variants))
        swaps = [
            i
            for i in world.catalog.values()
            if i.product_id == item.product_id
            and i.item_id != item.item_id
            and i.stock > 0
            and sum(a != b for a, b in zip(i.attributes, item.attributes, strict=True)) == 1
        ]
        if swaps:
            break
    new = rng.choice(swaps)
    attr, value = next(
        (a, v) for (a, v), (_, w) in zip(new.attributes, item.attributes, strict=True) if v != w
    )
    days = rng.randint(40, 90) if trap and not final else rng.randint(2, 28)
    oid = _order_with(rng, world, user, theta, item, "delivered", days)
    swap = (("item_id", item.item_id), ("new_item_id", new.item_id), ("order_id", oid))
    wish = (("exchange_items", swap),)
    blocked = refusal(oid, blocker_evidence(world, oid, item.item_id, final)) if trap else None
    slots = [("exchange", f"{attr}={value}")]
    return _order_step(
        rng, theta, "exchange", item, oid, slots, () if trap else wish, blocked, extra=1, wish=wish
    )


def _order_step(
    rng: random.Random,
    theta: Theta,
    kind: str,
    item: Item,
    oid: str,
    slots: list[tuple[str, str]],
    writes: tuple[Any, ...],
    answer: str | None,
    extra: int = 0,
    wish: tuple[Any, ...] | None = None,
) -> Step:
    revealed = _reveal(rng, theta, slots, ())
    lines = extra + 2 * len(writes) + (len(slots) - len(revealed))
    return Step(
        kind,
        item.title,
        tuple(slots),
        revealed,
        0,
        writes,
        answer,
        oid,
        ref_lines=lines,
        wish=wish if wish != writes else None,
    )


def checkout_step(rng: random.Random, user: User, theta: Theta) -> Step:
    pm = rng.choice([p for p in user.payments if p.kind != "gift_card"])
    address = user.addresses[0]
    slots = [("payment_method", pm.kind.replace("_", " ")), ("address", address.street)]
    revealed = _reveal(rng, theta, slots, ())
    writes = (("checkout", (("address_id", address.address_id), ("payment_method_id", pm.pm_id))),)
    return Step(
        "checkout",
        "cart",
        tuple(slots),
        revealed,
        0,
        writes,
        None,
        None,
        ref_lines=2 + len(slots) - len(revealed),
    )


STEP_KIND = {
    "find_product": "find",
    "cart_build": "cart",
    "cancel": "cancel",
    "return": "return",
    "exchange": "exchange",
    "order_status": "status",
    "policy_qa": "refund",
}


def _steps(rng: random.Random, world: World, user: User, theta: Theta, family: str) -> list[Step]:
    if family in ("find_product", "cart_build"):
        count = theta.cart_items if family == "cart_build" else 1
        return [product_step(rng, world, theta, STEP_KIND[family]) for _ in range(count)]
    if family == "checkout":
        count = rng.randint(1, theta.cart_items)
        carts = [product_step(rng, world, theta, "cart") for _ in range(count)]
        return [*carts, checkout_step(rng, user, theta)]
    if family == "journey":
        kinds = [
            rng.choice(("cancel", "return", "exchange", "cart")) for _ in range(theta.journey_steps)
        ]
        return [
            product_step(rng, world, theta, "cart")
            if k == "cart"
            else order_step(rng, world, user, theta, k, trap_ok=False)
            for k in kinds
        ]
    return [order_step(rng, world, user, theta, STEP_KIND[family], trap_ok=True)]


def generate_scenario(
    rng: random.Random, fake: Faker, theta: Theta, family: str
) -> tuple[World, Scenario]:
    """The world and the hidden goal of one episode of ``family`` at ``theta``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; the families are {', '.join(FAMILIES)}")
    world = make_world(
        rng, fake, theta.catalog_items, theta.variants, theta.p_oos, 2 + theta.level // 3
    )
    user = next(iter(world.users.values()))
    for _ in range(theta.orders):
        add_order(
            rng,
            world,
            user,
            _filler(rng, world, user, theta, rng.randint(1, 2)),
            rng.choice(("pending", "shipped", "delivered", "delivered")),
            rng.randint(1, 120),
        )
    steps = _steps(rng, world, user, theta, family)
    targets = tuple(s.target for s in steps if s.kind in ("find", "cart") and s.target)
    firsts = tuple(s.switch[2] for s in steps if s.switch)
    for step in steps:
        if step.kind in ("find", "cart") and step.target:
            make_unique(rng, world, step.target, step_constraints(step), targets + firsts)
        if step.switch:
            first = step_constraints(step, switched=False)
            make_unique(rng, world, step.switch[2], first, targets + firsts)
    orders = [o for o in world.db.orders if world.db.orders[o]["user"] == user.user_id]
    rng.shuffle(orders)
    world.db.orders = {o: world.db.orders[o] for o in orders}
    needs_identity = any(s.kind not in ("find", "cart") for s in steps)
    answer = steps[-1].answer if len(steps) == 1 or family == "checkout" else None
    kind = (
        "none"
        if answer is None
        else "item"
        if steps[-1].kind == "find"
        else "number"
        if steps[-1].kind == "refund" and not answer.startswith(INELIGIBLE)
        else "keyed"
    )
    t_oracle = sum(s.ref_lines for s in steps) + (len(steps) - 1) + 1
    if needs_identity:
        t_oracle += 3 + len(orders)  # ask email, find user, get user, read every order
    scenario = Scenario(family, user, tuple(steps), needs_identity, answer, kind, t_oracle)
    return world, scenario
