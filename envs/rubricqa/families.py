"""What each RubricQA task family writes about: its facts, numbers, openings and layouts.

A family builder turns a seeded ``random.Random`` and a per-instance ``Faker`` into a
:class:`Material`: the instruction, the facts the answer must use, the figures it must
compute (exact, with sympy), and which structural rules suit it. :mod:`.generators` then
picks criteria from it by difficulty.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import sympy as sp
from faker import Faker


@dataclass(frozen=True)
class Fact:
    """A labelled fact; the answer must mention ``value`` verbatim."""

    label: str
    value: str


@dataclass(frozen=True)
class Figure:
    """A number the answer must compute and state right after ``cue``."""

    cue: str
    expression: str
    """Plain arithmetic shown to the writer (``12 × 35.50``)."""
    value: str
    """The exact result, rounded to cents when it is not whole."""


@dataclass(frozen=True)
class Material:
    """Everything a family contributes to one task."""

    family: str
    instruction: str
    topic: str
    """A few words naming the subject, for titles."""
    facts: tuple[Fact, ...]
    figures: tuple[Figure, ...]
    alternates: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Label -> other plausible values, for out-of-date updates and distractor notes."""
    opening: str = ""
    closing: str = ""
    title_prefix: str = ""
    headings: tuple[str, ...] = ()
    placeholders: tuple[str, ...] = ()
    ordered: tuple[str, ...] = ()
    """Fact labels whose values must be mentioned in this order."""
    layouts: tuple[str, ...] = ()
    """Structural rules that suit the family (keys of ``generators.RULES``, plus ``json``)."""


def money(rng: random.Random, low: int, high: int) -> str:
    """A price with cents such as ``35.50``."""
    return f"{rng.randint(low, high)}.{rng.choice(['00', '25', '50', '75', '90'])}"


def figure(cue: str, text: str) -> Figure:
    """A :class:`Figure` whose value sympy computes exactly from ``text`` (``×``, ``−``)."""
    exact = sp.sympify(text.replace("×", "*").replace("−", "-"), rational=True)
    value = sp.Rational(exact)
    if value.q == 1:
        shown = str(value.p)
    else:
        shown = str((Decimal(value.p) / Decimal(value.q)).quantize(Decimal("0.01"), ROUND_HALF_UP))
    return Figure(cue=cue, expression=text, value=shown)


def person(fake: Faker) -> str:
    return f"{fake.first_name()} {fake.last_name()}"


def day(rng: random.Random) -> str:
    when = date(2026, 1, 5) + timedelta(days=rng.randrange(340))
    return f"{when:%A} {when.day} {when:%B} {when.year}"


def clock(rng: random.Random) -> str:
    return f"{rng.randint(8, 18):02d}:{rng.choice([0, 15, 30, 45]):02d}"


def distinct(make: Callable[[], str], avoid: str, count: int = 2) -> tuple[str, ...]:
    """``count`` values from ``make`` that differ from ``avoid`` and from each other."""
    found: list[str] = []
    for _ in range(50):
        value = make()
        if value != avoid and value not in found:
            found.append(value)
        if len(found) == count:
            break
    return tuple(found)


EVENTS = (
    "quarterly review", "team workshop", "budget meeting", "product launch", "board dinner",
    "training day", "project kickoff", "client visit", "strategy session", "summer party",
)  # fmt: skip
ROOMS = (
    "Room 4B", "Room 12", "Hall C", "the Blue Lounge", "Room 7A", "the Garden Room",
    "Studio 3", "the Oak Suite", "Room 21", "the Rooftop Terrace",
)  # fmt: skip


def email(rng: random.Random, fake: Faker) -> Material:
    recipient, organizer = person(fake), person(fake)
    event = rng.choice(EVENTS)
    people, price = rng.randint(6, 40), money(rng, 12, 60)
    when, at, venue = day(rng), clock(rng), rng.choice(ROOMS)
    return Material(
        family="email",
        instruction=f"Write an email to {recipient} about the {event}.",
        topic=f"the {event}",
        facts=(
            Fact("date", when),
            Fact("start time", at),
            Fact("venue", venue),
            Fact("organizer", organizer),
            Fact("number of attendees", str(people)),
            Fact("price per person", f"{price} EUR"),
        ),
        figures=(figure("total cost", f"{people} × {price}"),),
        alternates={
            "date": distinct(lambda: day(rng), when),
            "start time": distinct(lambda: clock(rng), at),
            "venue": distinct(lambda: rng.choice(ROOMS), venue),
        },
        opening=f"Dear {recipient.split()[0]},",
        closing=f"Best regards, {organizer}",
        placeholders=("[PHONE]",),
        layouts=(
            "opening",
            "closing",
            "paragraphs",
            "bullets",
            "placeholders",
            "casing",
            "sentences",
            "banned",
        ),
    )


MATERIALS = ("oak", "walnut", "recycled aluminium", "bamboo", "ceramic", "brushed steel")
GOODS = ("desk lamp", "kettle", "backpack", "speaker", "chair", "water bottle", "clock")
FEATURES = (
    "a dimmable light", "USB-C charging", "a two-year battery", "a silent motor",
    "a washable cover", "a magnetic lid", "a foldable frame", "a spill-proof seal",
    "an auto-off timer", "a carry strap",
)  # fmt: skip


def product(rng: random.Random, fake: Faker) -> Material:
    name = f"{fake.last_name()} {rng.choice(GOODS).title()}"
    price, off, units = money(rng, 20, 240), rng.choice([10, 15, 20, 25, 30]), rng.randint(2, 6)
    features = rng.sample(FEATURES, 3)
    material = rng.choice(MATERIALS)
    return Material(
        family="product",
        instruction=f"Write a product description of the {name} for an online shop.",
        topic=f"the {name}",
        facts=(
            Fact("product name", name),
            Fact("material", material),
            Fact("price", f"{price} EUR"),
            Fact("discount", f"{off} percent"),
            Fact("warranty", f"{rng.randint(2, 5)} years"),
            *(Fact(f"feature {i + 1}", text) for i, text in enumerate(features)),
        ),
        figures=(
            figure("discounted price", f"{price} × (100 − {off}) / 100"),
            figure(f"price for {units} units", f"{units} × {price}"),
        ),
        alternates={"material": distinct(lambda: rng.choice(MATERIALS), material)},
        title_prefix="Product:",
        headings=("Overview", "Details"),
        layouts=(
            "title",
            "headings",
            "bullets",
            "paragraphs",
            "casing",
            "sentences",
            "banned",
            "json",
        ),
    )


SECTORS = ("solar panels", "bicycle parts", "organic tea", "school software", "garden tools")


def summary(rng: random.Random, fake: Faker) -> Material:
    company, founder, city = fake.company(), person(fake), fake.city()
    founded, staff = rng.randint(1950, 2018), rng.randint(12, 4000)
    revenue, growth = rng.randint(2, 900), rng.choice([4, 5, 8, 10, 12, 15, 20, 25])
    sector = rng.choice(SECTORS)
    return Material(
        family="summary",
        instruction=f"Write a short summary of these facts about {company}.",
        topic=f"{company} at a glance",
        facts=(
            Fact("company", company),
            Fact("sector", sector),
            Fact("founder", founder),
            Fact("headquarters", city),
            Fact("founding year", str(founded)),
            Fact("number of employees", str(staff)),
            Fact("revenue last year", f"{revenue} million EUR"),
            Fact("expected growth", f"{growth} percent"),
        ),
        figures=(
            figure("expected revenue", f"{revenue} × (100 + {growth}) / 100"),
            figure("company age", f"2026 − {founded}"),
        ),
        alternates={
            "headquarters": distinct(fake.city, city),
            "founder": distinct(lambda: person(fake), founder),
        },
        title_prefix="Summary:",
        headings=("Background", "Key figures"),
        layouts=("title", "headings", "paragraphs", "casing", "sentences", "banned"),
    )


SIGHTS = ("Museum", "Park", "Market", "Cathedral", "Gallery", "Harbour", "Castle", "Gardens")


def itinerary(rng: random.Random, fake: Faker) -> Material:
    city, guest = fake.city(), person(fake)
    kinds = rng.sample(SIGHTS, rng.randint(3, 4))
    stops = [f"the {fake.last_name()} {kind}" for kind in kinds]
    minutes = [rng.choice([30, 45, 60, 75, 90, 120]) for _ in stops]
    facts = [Fact("traveller", guest), Fact("city", city), Fact("meeting point", rng.choice(ROOMS))]
    facts += [Fact(f"stop {i + 1}", s) for i, s in enumerate(stops)]
    facts += [Fact(f"time at stop {i + 1}", f"{m} minutes") for i, m in enumerate(minutes)]
    return Material(
        family="itinerary",
        instruction=f"Write a one-day itinerary in {city} for {guest}.",
        topic=f"one day in {city}",
        facts=tuple(facts),
        figures=(figure("total visiting time", " + ".join(map(str, minutes))),),
        alternates={"meeting point": distinct(lambda: rng.choice(ROOMS), facts[2].value)},
        title_prefix="Itinerary:",
        headings=("Morning", "Afternoon"),
        ordered=tuple(f"stop {i + 1}" for i in range(len(stops))),
        layouts=("title", "order", "bullets", "paragraphs", "casing", "sentences", "banned"),
    )


def faq(rng: random.Random, fake: Faker) -> Material:
    shop, agent = fake.company(), person(fake)
    good = rng.choice(GOODS)
    window = rng.choice([14, 30, 60, 90])
    elapsed = rng.randint(1, window - 1)
    paid, fee = money(rng, 30, 300), money(rng, 3, 15)
    return Material(
        family="faq",
        instruction=f"Answer a customer of {shop} who asks whether they can still return a {good}.",
        topic=f"returning a {good}",
        facts=(
            Fact("shop", shop),
            Fact("return window", f"{window} days"),
            Fact("days since purchase", str(elapsed)),
            Fact("price paid", f"{paid} EUR"),
            Fact("restocking fee", f"{fee} EUR"),
            Fact("support agent", agent),
            Fact("contact", fake.company_email()),
        ),
        figures=(
            figure("days left", f"{window} − {elapsed}"),
            figure("refund", f"{paid} − {fee}"),
        ),
        alternates={"support agent": distinct(lambda: person(fake), agent)},
        opening="Thank you for your question.",
        closing=f"Kind regards, {agent}",
        title_prefix="Re:",
        placeholders=("[ORDER NUMBER]",),
        layouts=(
            "opening",
            "closing",
            "paragraphs",
            "placeholders",
            "casing",
            "sentences",
            "banned",
        ),
    )


FAMILIES: dict[str, Callable[[random.Random, Faker], Material]] = {
    "email": email,
    "product": product,
    "summary": summary,
    "itinerary": itinerary,
    "faq": faq,
}
"""Every family builder, by name."""
