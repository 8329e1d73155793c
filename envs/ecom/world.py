"""The seeded synthetic store of ``rlvr/Ecom-v0``: catalog, users, orders and the policy.

Everything is a pure function of one ``random.Random`` and one per-instance ``Faker`` (seeded
from that RNG): no global state, no wall clock (``TODAY`` is fixed), dicts filled in a fixed
order. Records that cross modules are frozen dataclasses; the mutable part of the store (the
cart and the orders) is a :class:`Database` of plain dicts, so the reward can diff it.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from dataclasses import dataclass, field
from typing import Any

from faker import Faker

TODAY = dt.date(2026, 6, 1)
"""The store's fixed 'today'; order dates and the return window count from it."""

POLICY_VERSION = "2026.2"
RETURN_WINDOW_DAYS = 30
RESTOCKING_FEE = 0.15
FREE_SHIPPING_MIN = 35.0
CANCEL_REASONS = (
    "no longer needed",
    "ordered by mistake",
    "found a better price",
    "delivery takes too long",
    "bought it elsewhere",
    "changed my mind",
    "ordered the wrong item",
    "the gift is no longer needed",
)
ELECTRONICS = ("chargers", "headphones")
"""Categories whose returns pay the restocking fee."""
FINAL_SALE = ("beauty",)
"""Categories that cannot be returned or exchanged."""

POLICY = f"""Store policy v{POLICY_VERSION}
- identity: before looking up or changing a customer's orders (get_order, checkout, \
cancel_order, return_items, exchange_items), find the customer by email (find_user_by_email) or \
by name and zip code (find_user_by_name_zip); otherwise it is a policy violation.
- confirmation: before every write (add_to_cart, remove_from_cart, set_quantity, checkout, \
cancel_order, return_items, exchange_items) ask the customer to confirm the exact call with \
ask_confirmation and get a 'yes'. A write without that confirmation is a policy violation, and \
so is asking to confirm a call the customer did not ask for; after 2 such proposals the \
customer gives up and the conversation ends.
- recommendations: recommend only items that are in stock; when several items meet every \
requirement, the customer wants the cheapest one.
- cancel: only pending orders can be cancelled; the reason is one of: \
{"; ".join(CANCEL_REASONS)}.
- return: only delivered orders, within {RETURN_WINDOW_DAYS} days of delivery (today is \
{TODAY.isoformat()}); items of the categories {", ".join(FINAL_SALE)} are final sale and cannot \
be returned or exchanged. The refund goes to the original payment method or to a gift card.
- refund amount: price x quantity, minus a {int(RESTOCKING_FEE * 100)}% restocking fee for \
the categories {", ".join(ELECTRONICS)}; an item that cannot be returned is a forbidden request.
- exchange: delivered orders within the return window, for another variant of the same product.
- shipping: free for carts of ${FREE_SHIPPING_MIN:.2f} or more.
- ids: never use an id that no tool output has shown you.
- order status: answer with the order id and its status, e.g. 'O123456 shipped'.
- a request the policy forbids: make no change and submit 'ineligible: ', the order id and \
what blocks it with the fact that proves it: the order's status for a cancel (e.g. \
'ineligible: O123456 shipped'); for a return, an exchange or a refund question, 'final sale' \
and the item id of the final-sale line (e.g. 'ineligible: O123456 final sale I123456') or \
'return window' and the delivery date or the number of days since delivery (e.g. \
'ineligible: O123456 return window since 2026-04-01 (61 days)')."""
"""The written, versioned store policy (``policy_lookup`` and ``info["policy"]``)."""


@dataclass(frozen=True)
class Category:
    """A category with its attribute schema and title words."""

    name: str
    attributes: tuple[tuple[str, tuple[str, ...]], ...]
    nouns: tuple[str, ...]
    price_mu: float
    """Median price in dollars."""


CATEGORIES: tuple[Category, ...] = (
    Category(
        "t-shirts",
        (
            ("color", ("black", "white", "navy", "red", "green")),
            ("size", ("XS", "S", "M", "L", "XL", "XXL")),
            ("material", ("cotton", "linen", "polyester")),
        ),
        ("Tee", "Crew Shirt", "V-Neck"),
        22.0,
    ),
    Category(
        "shoes",
        (
            ("color", ("black", "white", "brown", "grey")),
            ("size", ("7", "8", "9", "10", "11", "12")),
            ("material", ("leather", "canvas", "mesh")),
        ),
        ("Sneaker", "Runner", "Loafer"),
        70.0,
    ),
    Category(
        "chargers",
        (
            ("connector", ("USB-C", "Lightning", "Micro-USB")),
            ("wattage", ("20W", "30W", "65W", "100W")),
            ("color", ("black", "white")),
        ),
        ("Charger", "Power Adapter", "Wall Brick"),
        28.0,
    ),
    Category(
        "headphones",
        (
            ("color", ("black", "white", "silver", "blue")),
            ("connector", ("USB-C", "Bluetooth", "3.5mm")),
            ("fit", ("over-ear", "on-ear", "in-ear")),
        ),
        ("Headphones", "Earbuds", "Headset"),
        80.0,
    ),
    Category(
        "cookware",
        (
            ("material", ("steel", "cast iron", "aluminum", "ceramic")),
            ("capacity", ("1L", "2L", "3L", "5L")),
            ("color", ("black", "red", "silver")),
        ),
        ("Saucepan", "Skillet", "Dutch Oven"),
        45.0,
    ),
    Category(
        "lamps",
        (
            ("color", ("black", "white", "brass", "green")),
            ("material", ("metal", "glass", "wood")),
            ("bulb", ("LED", "halogen")),
        ),
        ("Desk Lamp", "Floor Lamp", "Reading Light"),
        40.0,
    ),
    Category(
        "backpacks",
        (
            ("color", ("black", "grey", "olive", "navy")),
            ("capacity", ("15L", "20L", "30L", "40L")),
            ("material", ("nylon", "canvas", "polyester")),
        ),
        ("Backpack", "Daypack", "Rucksack"),
        55.0,
    ),
    Category(
        "beauty",
        (
            ("scent", ("lavender", "citrus", "unscented", "rose")),
            ("volume", ("50ml", "100ml", "200ml")),
            ("skin", ("dry", "oily", "normal")),
        ),
        ("Lotion", "Face Cream", "Body Wash"),
        18.0,
    ),
    Category(
        "toys",
        (
            ("age", ("3+", "6+", "8+", "12+")),
            ("color", ("red", "blue", "yellow", "green")),
            ("pieces", ("50", "100", "250", "500")),
        ),
        ("Puzzle", "Building Set", "Robot Kit"),
        30.0,
    ),
    Category(
        "yoga",
        (
            ("color", ("purple", "black", "blue", "pink")),
            ("thickness", ("3mm", "5mm", "8mm")),
            ("material", ("TPE", "rubber", "cork")),
        ),
        ("Yoga Mat", "Exercise Mat", "Travel Mat"),
        35.0,
    ),
    Category(
        "office",
        (
            ("color", ("black", "blue", "red")),
            ("pack", ("5", "10", "20", "50")),
            ("tip", ("fine", "medium", "bold")),
        ),
        ("Pens", "Markers", "Highlighters"),
        12.0,
    ),
    Category(
        "garden",
        (
            ("material", ("plastic", "ceramic", "terracotta", "metal")),
            ("size", ("S", "M", "L")),
            ("color", ("green", "white", "brown")),
        ),
        ("Planter", "Pot", "Window Box"),
        25.0,
    ),
)
CATEGORY_BY_NAME = {c.name: c for c in CATEGORIES}
ADJECTIVES = (
    "Classic",
    "Urban",
    "Eco",
    "Pro",
    "Essential",
    "Nova",
    "Summit",
    "Prime",
    "Aero",
    "Vista",
    "Zen",
    "Core",
    "Luxe",
    "Swift",
    "Terra",
    "Pulse",
)
ORDER_STATUSES = ("pending", "processed", "shipped", "delivered", "cancelled")


@dataclass(frozen=True)
class Item:
    """One purchasable variant of a product."""

    item_id: str
    product_id: str
    title: str
    brand: str
    category: str
    attributes: tuple[tuple[str, str], ...]
    price: float
    rating: float
    ship_days: int
    stock: int

    def attr(self, name: str) -> str:
        return dict(self.attributes)[name]

    def public(self) -> dict[str, Any]:
        """What tools show about the item."""
        return {
            "item_id": self.item_id,
            "product_id": self.product_id,
            "title": self.title,
            "brand": self.brand,
            "category": self.category,
            "attributes": dict(self.attributes),
            "price": self.price,
            "rating": self.rating,
            "ship_days": self.ship_days,
            "in_stock": self.stock > 0,
        }


@dataclass(frozen=True)
class Payment:
    pm_id: str
    kind: str
    """``credit_card``, ``paypal`` or ``gift_card``."""
    detail: str


@dataclass(frozen=True)
class Address:
    address_id: str
    street: str
    city: str
    zip: str


@dataclass(frozen=True)
class User:
    user_id: str
    name: str
    email: str
    zip: str
    addresses: tuple[Address, ...]
    payments: tuple[Payment, ...]


@dataclass
class Database:
    """The mutable part of the store; the reward diffs two of these."""

    cart: dict[str, int] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    """order id -> ``{user, status, date, items: {item: qty}, prices: {item: unit price},
    payment, address, returned: {item: qty}, refund_to, exchanged: {item: new item},
    cancel_reason}``."""
    next_order: int = 0

    def copy(self) -> Database:
        orders = {
            oid: {k: (dict(v) if isinstance(v, dict) else v) for k, v in order.items()}
            for oid, order in self.orders.items()
        }
        return Database(dict(self.cart), orders, self.next_order)


@dataclass
class World:
    """The whole store of one episode (built once per reset, then only the db changes)."""

    catalog: dict[str, Item]
    users: dict[str, User]
    db: Database
    brands: tuple[str, ...]
    used_categories: list[str] = field(default_factory=list)
    """Categories of the wanted products so far (one wanted product per category)."""

    def user_orders(self, user_id: str) -> list[str]:
        return [oid for oid, o in self.db.orders.items() if o["user"] == user_id]


def new_id(rng: random.Random, prefix: str, digits: int, taken: dict[str, Any]) -> str:
    """A fresh id ``prefix`` + ``digits`` digits, not a key of ``taken``."""
    low = 10 ** (digits - 1)
    while True:
        candidate = f"{prefix}{low + int(rng.random() * 9 * low)}"
        if candidate not in taken:
            return candidate


def price_for(rng: random.Random, category: Category) -> float:
    return max(3.99, round(rng.lognormvariate(0.0, 0.5) * category.price_mu) + 0.99)


@functools.cache
def combinations(category: Category) -> tuple[tuple[tuple[str, str], ...], ...]:
    """Every attribute combination of ``category``, in schema order."""
    combos: list[tuple[tuple[str, str], ...]] = [()]
    for name, values in category.attributes:
        combos = [(*c, (name, v)) for c in combos for v in values]
    return tuple(combos)


def make_product(
    rng: random.Random,
    catalog: dict[str, Item],
    brands: tuple[str, ...],
    category: Category,
    variants: int,
    p_oos: float,
) -> list[Item]:
    """A new product of ``category`` with ``variants`` distinct variant items."""
    brand = brands[int(rng.random() * len(brands))]
    title = f"{brand} {rng.choice(ADJECTIVES)} {rng.choice(category.nouns)}"
    rating = round(1.0 + 4.0 * rng.random(), 1)
    ship = 1 + int(rng.random() * 10)
    base = price_for(rng, category)
    items: list[Item] = []
    product_id = ""
    for attrs in rng.sample(combinations(category), variants):
        price = round(base * (0.9 + 0.3 * rng.random())) + 0.99
        stock = 0 if rng.random() < p_oos else 1 + int(rng.random() * 30)
        item_id = new_id(rng, "I", 6, catalog)
        product_id = product_id or f"P{item_id[1:]}"
        item = Item(
            item_id, product_id, title, brand, category.name, attrs, price, rating, ship, stock
        )
        catalog[item.item_id] = item
        items.append(item)
    return items


def make_user(rng: random.Random, fake: Faker, users: dict[str, User]) -> User:
    name = fake.name()
    first, last = name.split(" ")[0].lower(), name.split(" ")[-1].lower()
    email = f"{first}.{last}{rng.randint(1, 999)}@example.com"
    user_id = new_id(rng, "U", 5, users)
    zip_code = f"{rng.randint(10000, 99999)}"
    address = Address(
        f"A{rng.randint(1000, 9999)}", fake.street_address().replace(".", ""), fake.city(), zip_code
    )
    kinds = ["credit_card", "paypal", "gift_card"]
    rng.shuffle(kinds)
    payments = tuple(
        Payment(
            f"pm_{kind}_{rng.randint(1000, 9999)}",
            kind,
            f"balance ${rng.randint(5, 200)}.00"
            if kind == "gift_card"
            else f"ending {rng.randint(1000, 9999)}"
            if kind == "credit_card"
            else email,
        )
        for kind in sorted(kinds[: rng.randint(2, 3)])
    )
    return User(user_id, name, email, zip_code, (address,), payments)


def make_world(
    rng: random.Random,
    fake: Faker,
    catalog_items: int,
    variants: int,
    p_oos: float,
    extra_users: int,
) -> World:
    """A catalog of about ``catalog_items`` items and ``1 + extra_users`` users, no orders yet."""
    brands = tuple(dict.fromkeys(fake.last_name() for _ in range(10)))
    catalog: dict[str, Item] = {}
    while len(catalog) < catalog_items:
        make_product(rng, catalog, brands, rng.choice(CATEGORIES), rng.randint(2, variants), p_oos)
    users: dict[str, User] = {}
    for _ in range(1 + extra_users):
        user = make_user(rng, fake, users)
        users[user.user_id] = user
    return World(catalog, users, Database(next_order=rng.randint(100000, 800000)), brands)


def add_order(
    rng: random.Random, world: World, user: User, items: dict[str, int], status: str, days_ago: int
) -> str:
    """Record an order of ``user`` and return its id."""
    oid = new_id(rng, "O", 6, world.db.orders)
    world.db.orders[oid] = {
        "user": user.user_id,
        "status": status,
        "date": (TODAY - dt.timedelta(days=days_ago)).isoformat(),
        "items": dict(items),
        "prices": {i: world.catalog[i].price for i in items},
        "payment": rng.choice(user.payments).pm_id,
        "address": user.addresses[0].address_id,
        "returned": {},
        "refund_to": None,
        "exchanged": {},
        "cancel_reason": None,
    }
    return oid


def days_since(date: str) -> int:
    return (TODAY - dt.date.fromisoformat(date)).days


def returnable(world: World, order_id: str, item_id: str) -> bool:
    """Whether the policy allows returning (or exchanging) ``item_id`` of ``order_id``."""
    order = world.db.orders[order_id]
    item = world.catalog[item_id]
    return (
        order["status"] == "delivered"
        and days_since(order["date"]) <= RETURN_WINDOW_DAYS
        and item.category not in FINAL_SALE
    )


def refund_amount(world: World, order_id: str, item_id: str) -> float:
    """What returning every unit of ``item_id`` from ``order_id`` would refund (policy)."""
    if not returnable(world, order_id, item_id):
        return 0.0
    item = world.catalog[item_id]
    order = world.db.orders[order_id]
    gross = order["prices"][item_id] * order["items"][item_id]
    fee = RESTOCKING_FEE if item.category in ELECTRONICS else 0.0
    return round(gross * (1 - fee), 2)
