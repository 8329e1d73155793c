"""Word problems: shopping, travel, sharing and saving first; ages, joint work, ticket sales,
consecutive integers, mixtures and interest from level 3 on.

Names, cities and items come from a ``Faker`` instance, numbers from the ``random.Random``.
The Faker instance is re-seeded from ``rng`` before use (``seed_instance``, never the
class-level ``Faker.seed``), so a problem stays a pure function of the rng seed even when a
caller reuses one Faker across episodes.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import sympy as sp
from faker import Faker
from sympy.solvers.solvers import solve_linear

from rlvr.envs.math.problem import MathProblem, format_number, grow

ITEMS = (
    "notebooks",
    "pencils",
    "apples",
    "mugs",
    "candles",
    "books",
    "plants",
    "scarves",
    "batteries",
    "posters",
    "lamps",
    "puzzles",
)
"""Things people buy or share in the templates (Faker has no product provider)."""

BAKED = ("cookies", "muffins", "rolls", "cupcakes", "pretzels")


def _names(fake: Faker, count: int) -> list[str]:
    """``count`` different first names (falling back to numbered names if Faker repeats)."""
    names: list[str] = []
    for _ in range(8 * count):
        name = fake.first_name()
        if name not in names:
            names.append(name)
        if len(names) == count:
            return names
    return names + [f"Person {i}" for i in range(len(names) + 1, count + 1)]


def _price(rng: random.Random, steps: int, top: int) -> sp.Rational:
    """A price in dollars; with cents (multiples of 0.25) from the second level of the family."""
    whole = rng.randint(1, grow(steps, top, top, 40 * top))
    if steps >= 1 and rng.random() < 0.5:
        return sp.Rational(4 * whole + rng.randint(1, 3), 4)
    return sp.Integer(whole)


def _change(rng: random.Random, fake: Faker, steps: int) -> tuple[str, sp.Rational]:
    (name,), item = _names(fake, 1), fake.random_element(ITEMS)
    count, price = rng.randint(2, grow(steps, 9, 6, 60)), _price(rng, steps, 9)
    cost = count * price
    bill = next(b for b in (10, 20, 50, 100, 200, 500, 1000, 5000, 10**5) if b >= cost)
    text = (
        f"{name} buys {count} {item} at {format_number(price)} dollars each and pays with a "
        f"{bill}-dollar bill. How much change, in dollars, does {name} get back?"
    )
    return text, bill - cost


def _travel(rng: random.Random, fake: Faker, steps: int) -> tuple[str, sp.Rational]:
    (name,), start, end = _names(fake, 1), fake.city(), fake.city()
    while end == start:
        end = fake.city()
    speed = 10 * rng.randint(3, grow(steps, 12, 3, 90))
    hours = sp.Rational(rng.randint(1, grow(steps, 8, 4, 48)), 2 if steps == 0 else 4)
    distance = speed * hours
    text = (
        f"{name} drives from {start} to {end}, a distance of {format_number(distance)} km, "
        f"at an average speed of {speed} km/h. How many hours does the trip take?"
    )
    return text, distance / speed


def _bake(rng: random.Random, fake: Faker, steps: int) -> tuple[str, sp.Rational]:
    (name,), city, baked = _names(fake, 1), fake.city(), fake.random_element(BAKED)
    trays, per_tray = rng.randint(2, grow(steps, 9, 5, 50)), rng.randint(4, grow(steps, 12, 6, 60))
    sold = rng.randint(1, trays * per_tray)
    text = (
        f"{name} bakes {trays} trays of {per_tray} {baked} each for a fair in {city} and "
        f"sells {sold} of them. How many {baked} are left?"
    )
    return text, sp.Integer(trays * per_tray - sold)


def _share(rng: random.Random, fake: Faker, steps: int) -> tuple[str, sp.Rational]:
    (name,), item = _names(fake, 1), fake.random_element(ITEMS)
    friends, each = rng.randint(2, grow(steps, 8, 4, 40)), rng.randint(2, grow(steps, 12, 8, 90))
    total = friends * each
    text = (
        f"{name} has {total} {item} and shares them equally among {friends} "
        f"friends. How many {item} does each friend get?"
    )
    return text, sp.Rational(total, friends)


def _savings(rng: random.Random, fake: Faker, steps: int) -> tuple[str, sp.Rational]:
    (name,) = _names(fake, 1)
    saved, weekly = (
        rng.randint(0, grow(steps, 100, 100, 5000)),
        rng.randint(5, grow(steps, 30, 20, 500)),
    )
    goal = saved + weekly * rng.randint(2, grow(steps, 20, 10, 200))
    text = (
        f"{name} has already saved {saved} dollars and saves {weekly} more dollars every week. "
        f"After how many weeks will {name} have exactly {goal} dollars?"
    )
    return text, sp.Rational(goal - saved, weekly)


def _unit_price(rng: random.Random, fake: Faker, steps: int) -> tuple[str, sp.Rational]:
    (name,), item = _names(fake, 1), fake.random_element(ITEMS)
    count, other, price = rng.randint(2, 12), rng.randint(2, 30), _price(rng, steps, 12)
    paid = count * price
    text = (
        f"{name} pays {format_number(paid)} dollars for {count} {item}. At the same "
        f"price per item, how much do {other} {item} cost, in dollars?"
    )
    return text, paid / count * other


def _ages(rng: random.Random, fake: Faker, steps: int) -> tuple[str, sp.Rational]:
    first, second = _names(fake, 2)
    young, gap, later = (
        rng.randint(2, grow(steps, 30, 10, 80)),
        rng.randint(1, 30),
        rng.randint(1, 20),
    )
    total = (young + later) + (young + gap + later)
    age = sp.Symbol("age")
    _, answer = solve_linear((age + later) + (age + gap + later), total, [age])
    text = (
        f"{first} is {gap} years older than {second}. In {later} years, the sum of their ages "
        f"will be {total}. How old is {second} now?"
    )
    return text, answer


def _joint_work(rng: random.Random, fake: Faker, steps: int) -> tuple[str, sp.Rational]:
    first, second = _names(fake, 2)
    a, b = rng.randint(2, grow(steps, 12, 6, 60)), rng.randint(2, grow(steps, 12, 6, 60))
    text = (
        f"{first} can paint a fence alone in {a} hours, and {second} can paint the same fence "
        f"alone in {b} hours. How many hours do they need to paint it working together?"
    )
    return text, 1 / (sp.Rational(1, a) + sp.Rational(1, b))


def _tickets(rng: random.Random, fake: Faker, steps: int) -> tuple[str, sp.Rational]:
    city = fake.city()
    child = rng.randint(3, grow(steps, 12, 4, 40))
    adult = child + rng.randint(1, grow(steps, 10, 4, 40))
    adults, children = (
        rng.randint(1, grow(steps, 80, 40, 900)),
        rng.randint(1, grow(steps, 80, 40, 900)),
    )
    sold, total = adults + children, adult * adults + child * children
    count = sp.Symbol("count")
    _, answer = solve_linear(adult * count + child * (sold - count), total, [count])
    text = (
        f"A theater in {city} sells adult tickets for {adult} dollars and child tickets for "
        f"{child} dollars. One evening it sells {sold} tickets for a total of {total} dollars. "
        "How many adult tickets were sold?"
    )
    return text, answer


def _consecutive(rng: random.Random, fake: Faker, steps: int) -> tuple[str, sp.Rational]:
    count, start = rng.randint(3, 3 + min(steps, 5)), rng.randint(-20, grow(steps, 100, 100, 5000))
    even = rng.random() < 0.4
    gap = 2 if even else 1
    start = start * gap
    values = [start + gap * i for i in range(count)]
    kind = "consecutive even integers" if even else "consecutive integers"
    text = f"The sum of {count} {kind} is {sum(values)}. What is the largest of them?"
    return text, sp.Integer(values[-1])


def _mixture(rng: random.Random, fake: Faker, steps: int) -> tuple[str, sp.Rational]:
    (name,) = _names(fake, 1)
    a, b = rng.randint(2, grow(steps, 10, 5, 50)), rng.randint(2, grow(steps, 10, 5, 50))
    p, q = rng.randint(1, 40), rng.randint(1, 40)
    text = (
        f"{name} mixes {a} liters of a {p}% salt solution with {b} liters of a {q}% salt "
        "solution. What is the salt concentration of the mixture, in percent?"
    )
    return text, sp.Rational(a * p + b * q, a + b)


def _interest(rng: random.Random, fake: Faker, steps: int) -> tuple[str, sp.Rational]:
    (name,), city = _names(fake, 1), fake.city()
    principal, rate = 100 * rng.randint(1, grow(steps, 50, 50, 1000)), rng.randint(1, 12)
    if rng.random() < 0.5:
        years = rng.randint(2, 3 + min(steps, 5))
        text = (
            f"{name} deposits {principal} dollars in a bank in {city} at a simple interest rate "
            f"of {rate}% per year. How much interest, in dollars, does it earn in {years} years?"
        )
        return text, sp.Rational(principal * rate * years, 100)
    years = rng.randint(2, 3)  # at most 4 decimals: an amount a bank would show
    text = (
        f"{name} deposits {principal} dollars in a bank in {city} at {rate}% interest per year, "
        f"compounded annually. How many dollars are in the account after {years} years?"
    )
    return text, principal * (1 + sp.Rational(rate, 100)) ** years


Template = Callable[[random.Random, Faker, int], tuple[str, sp.Rational]]

TEMPLATES: tuple[tuple[int, Template], ...] = (
    (0, _change),
    (0, _travel),
    (0, _bake),
    (0, _share),
    (1, _savings),
    (1, _unit_price),
    (2, _ages),
    (2, _joint_work),
    (2, _tickets),
    (2, _consecutive),
    (3, _mixture),
    (3, _interest),
)
"""Each template with the number of levels above the family's first level it needs."""


def word_problem(rng: random.Random, steps: int, fake: Faker) -> MathProblem:
    """A word problem from the templates open at ``steps``; later levels favour new ones."""
    fake.seed_instance(rng.getrandbits(32))
    allowed = [build for first, build in TEMPLATES if first <= steps]
    top = max(first for first, _ in TEMPLATES if first <= steps)
    newest = [build for first, build in TEMPLATES if top - 1 <= first <= top]
    pool = newest if rng.random() < 0.6 else allowed
    text, answer = pool[rng.randrange(len(pool))](rng, fake, steps)
    return MathProblem("word_problem", text, format_number(answer))
