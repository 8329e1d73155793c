"""The task families of the code generator: a description, a reference solution, inputs.

Each :class:`Family` states its task in one sentence (with constants drawn per task), holds
the reference solution as source text (the single source of truth: expected outputs are
computed by running it on the host, it is trusted code), and draws test inputs: visible
examples first, then hidden ones that always include the edge cases the sentence mentions
(empty inputs, zero, negative numbers, wrap-around...).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faker import Faker

Inputs = Callable[[random.Random, Faker, int, dict[str, Any]], list[tuple[Any, ...]]]


@dataclass(frozen=True)
class Family:
    """One kind of task."""

    name: str
    level: int
    """The lowest difficulty that draws it."""
    function: str
    params: str
    """The parameter list, e.g. ``numbers`` or ``items, k``."""
    sentence: str
    """What the function must return; ``{name}`` fields come from ``constants``."""
    source: str
    """The reference solution (a ``def``), with the same fields."""
    constants: Callable[[random.Random], dict[str, Any]]
    inputs: Inputs


def _ints(rng: random.Random, n: int, low: int = -50, high: int = 50) -> list[int]:
    return [rng.randint(low, high) for _ in range(n)]


def _size(level: int) -> int:
    return 3 + 3 * level


def _none(rng: random.Random) -> dict[str, Any]:
    return {}


def _lists(edge: list[tuple[Any, ...]]) -> Inputs:
    def draw(rng: random.Random, fake: Faker, level: int, c: dict[str, Any]) -> list[Any]:
        out = [(_ints(rng, rng.randint(2, _size(level))),) for _ in range(2 + level)]
        return out[:2] + edge + out[2:]

    return draw


def _words(
    edge: list[tuple[Any, ...]], extra: Callable[[random.Random], tuple[Any, ...]]
) -> Inputs:
    def draw(rng: random.Random, fake: Faker, level: int, c: dict[str, Any]) -> list[Any]:
        out = []
        for _ in range(2 + level):
            text = " ".join(fake.words(rng.randint(1, 2 + level)))
            out.append((text, *extra(rng)))
        return out[:2] + edge + out[2:]

    return draw


def _rotate_inputs(rng: random.Random, fake: Faker, level: int, c: dict[str, Any]) -> list[Any]:
    out = [(_ints(rng, rng.randint(2, _size(level))), rng.randint(0, 9)) for _ in range(2 + level)]
    return [*out[:2], ([], 3), ([7], 5), ([1, 2, 3], 3), ([1, 2, 3], 7), *out[2:]]


def _dedupe_inputs(rng: random.Random, fake: Faker, level: int, c: dict[str, Any]) -> list[Any]:
    out: list[Any] = [
        (_ints(rng, rng.randint(3, _size(level) + 3), 0, 5),) for _ in range(2 + level)
    ]
    out += [([fake.word() for _ in range(rng.randint(3, 6))] * 2,)]
    return [*out[:2], ([],), ([4, 4, 4],), *out[2:]]


def _rle_inputs(rng: random.Random, fake: Faker, level: int, c: dict[str, Any]) -> list[Any]:
    out = []
    for _ in range(2 + level):
        runs = [rng.choice("abcxyz") * rng.randint(1, 4) for _ in range(rng.randint(2, 3 + level))]
        out.append(("".join(runs),))
    return [*out[:2], ("",), ("q",), ("zzzzzzzzzzzz",), *out[2:]]


def _number_inputs(high: Callable[[int], int], edge: list[int]) -> Inputs:
    def draw(rng: random.Random, fake: Faker, level: int, c: dict[str, Any]) -> list[Any]:
        out = [(rng.randint(2, high(level)),) for _ in range(2 + level)]
        return out[:2] + [(e,) for e in edge] + out[2:]

    return draw


def _nested(rng: random.Random, depth: int) -> list[Any]:
    items: list[Any] = []
    for _ in range(rng.randint(1, 3)):
        if depth > 0 and rng.random() < 0.4:
            items.append(_nested(rng, depth - 1))
        else:
            items.append(rng.randint(0, 9))
    return items


def _flatten_inputs(rng: random.Random, fake: Faker, level: int, c: dict[str, Any]) -> list[Any]:
    out = [(_nested(rng, 1 + level),) for _ in range(2 + level)]
    return [*out[:2], ([],), ([[], [[]]],), ([[[[[5]]]]],), *out[2:]]


def _gcd_inputs(rng: random.Random, fake: Faker, level: int, c: dict[str, Any]) -> list[Any]:
    out = []
    for _ in range(2 + level):
        g = rng.randint(1, 12)
        out.append(([g * rng.randint(1, 20) for _ in range(rng.randint(2, 2 + level))],))
    return [*out[:2], ([7],), ([1, 1],), ([17, 34, 51],), *out[2:]]


def _brackets(rng: random.Random, level: int) -> str:
    pairs, text = ["()", "[]", "{}"], []
    for _ in range(rng.randint(1, 2 + level)):
        pair = rng.choice(pairs)
        text.append(pair[0] + rng.choice(["", "x", "ab"]) + pair[1])
    joined = "".join(text)
    if rng.random() < 0.5:
        spot = rng.randrange(len(joined))
        joined = joined[:spot] + rng.choice(")]}([{") + joined[spot:]
    return joined


def _balanced_inputs(rng: random.Random, fake: Faker, level: int, c: dict[str, Any]) -> list[Any]:
    out = [(_brackets(rng, level),) for _ in range(3 + level)]
    return [*out[:2], ("",), ("no brackets",), ("(]",), ("([)]",), ("((",), ("{[()]}",), *out[2:]]


def _interval_inputs(rng: random.Random, fake: Faker, level: int, c: dict[str, Any]) -> list[Any]:
    out = []
    for _ in range(2 + level):
        spans = []
        for _ in range(rng.randint(2, 3 + level)):
            start = rng.randint(0, 20)
            spans.append([start, start + rng.randint(0, 5)])
        out.append((spans,))
    return [*out[:2], ([],), ([[1, 2], [2, 3]],), ([[5, 9], [1, 10]],), *out[2:]]


def _topk_inputs(rng: random.Random, fake: Faker, level: int, c: dict[str, Any]) -> list[Any]:
    out = []
    for _ in range(2 + level):
        pool = fake.words(rng.randint(3, 5), unique=True)
        words = [rng.choice(pool).capitalize() if rng.random() < 0.3 else rng.choice(pool)]
        words += [rng.choice(pool) for _ in range(rng.randint(4, 6 + 2 * level))]
        out.append((" ".join(words),))
    return [*out[:2], ("",), ("b a",), ("x  y\tx",), *out[2:]]


def _rpn(rng: random.Random, level: int) -> list[str]:
    tokens = [str(rng.randint(-9, 9))]
    for _ in range(rng.randint(1, 2 + level)):
        tokens += [str(rng.randint(-9, 9)), rng.choice("+-*")]
    return tokens


def _rpn_inputs(rng: random.Random, fake: Faker, level: int, c: dict[str, Any]) -> list[Any]:
    out = [(_rpn(rng, level),) for _ in range(2 + level)]
    return [*out[:2], (["42"],), (["3", "-4", "-"],), (["2", "3", "4", "*", "+"],), *out[2:]]


def _fib_inputs(rng: random.Random, fake: Faker, level: int, c: dict[str, Any]) -> list[Any]:
    out = [(rng.randint(2, 20 + 200 * level),) for _ in range(2 + level)]
    return [*out[:2], (0,), (1,), (2,), (1000 * (level + 1),), *out[2:]]


def _base_inputs(rng: random.Random, fake: Faker, level: int, c: dict[str, Any]) -> list[Any]:
    out = [(rng.randint(1, 10 ** (2 + level)),) for _ in range(2 + level)]
    return [*out[:2], (0,), (1,), (c["base"],), (c["base"] ** 3 - 1,), *out[2:]]


FAMILIES: tuple[Family, ...] = (
    Family(
        "sum_list",
        0,
        "total",
        "numbers",
        "Return the sum of the integers in `numbers` (0 for an empty list).",
        "def total(numbers):\n    return sum(numbers)\n",
        _none,
        _lists([([],), ([-3],)]),
    ),
    Family(
        "reverse_string",
        0,
        "reverse_text",
        "text",
        "Return `text` reversed.",
        "def reverse_text(text):\n    return text[::-1]\n",
        _none,
        _words([("",), ("a",), ("ab ba",)], lambda rng: ()),
    ),
    Family(
        "count_vowels",
        0,
        "count_vowels",
        "text",
        "Return how many vowels (a, e, i, o, u, in either case) `text` contains.",
        "def count_vowels(text):\n    return sum(ch in 'aeiouAEIOU' for ch in text)\n",
        _none,
        _words([("",), ("xyz",), ("AEIOU aeiou",)], lambda rng: ()),
    ),
    Family(
        "max_of",
        0,
        "largest",
        "numbers",
        "Return the largest value in the non-empty list `numbers`.",
        "def largest(numbers):\n    return max(numbers)\n",
        _none,
        _lists([([-5],), ([-3, -7, -1],), ([4, 4],)]),
    ),
    Family(
        "multiples_sum",
        1,
        "sum_multiples",
        "numbers",
        "Return the sum of the numbers in "
        "`numbers` that are divisible by {m} (0 if there are none).",
        "def sum_multiples(numbers):\n    return sum(x for x in numbers if x % {m} == 0)\n",
        lambda rng: {"m": rng.randint(2, 9)},
        _lists([([],), ([0],), ([-18, 1],)]),
    ),
    Family(
        "rotate_left",
        1,
        "rotate_left",
        "items, k",
        "Return the list `items` rotated left "
        "by `k` positions; `k` may exceed the length, and an empty list stays empty.",
        "def rotate_left(items, k):\n    if not items:\n        return []\n"
        "    k %= len(items)\n    return items[k:] + items[:k]\n",
        _none,
        _rotate_inputs,
    ),
    Family(
        "caesar",
        1,
        "shift_letters",
        "text",
        "Shift every lowercase letter of `text` "
        "forward by {k} places in the alphabet, wrapping around from z to a; leave every "
        "other character unchanged.",
        "def shift_letters(text):\n    return ''.join(chr((ord(c) - 97 + {k}) % 26 + 97) "
        "if 'a' <= c <= 'z' else c for c in text)\n",
        lambda rng: {"k": rng.randint(1, 25)},
        _words([("",), ("xyz",), ("Hello, World!",)], lambda rng: ()),
    ),
    Family(
        "dedupe",
        1,
        "unique_in_order",
        "items",
        "Return the elements of `items` without "
        "duplicates, keeping the first occurrence of each, in their original order.",
        "def unique_in_order(items):\n    seen = []\n    for x in items:\n"
        "        if x not in seen:\n            seen.append(x)\n    return seen\n",
        _none,
        _dedupe_inputs,
    ),
    Family(
        "run_length",
        1,
        "run_length",
        "text",
        "Run-length encode `text`: each run of a "
        "repeated character becomes the character followed by the run length (so 'aaab' "
        "gives 'a3b1'); the empty string gives ''.",
        "def run_length(text):\n    out, i = [], 0\n    while i < len(text):\n"
        "        j = i\n        while j < len(text) and text[j] == text[i]:\n"
        "            j += 1\n        out.append(text[i] + str(j - i))\n        i = j\n"
        "    return ''.join(out)\n",
        _none,
        _rle_inputs,
    ),
    Family(
        "digital_root",
        2,
        "digital_root",
        "n",
        "Repeatedly replace the non-negative "
        "integer `n` by the sum of its decimal digits until a single digit remains, and "
        "return that digit.",
        "def digital_root(n):\n    while n >= 10:\n        n = sum(int(d) for d in str(n))\n"
        "    return n\n",
        _none,
        _number_inputs(lambda lv: 10 ** (3 + 2 * lv), [0, 9, 10, 10**30 - 1]),
    ),
    Family(
        "fib_mod",
        2,
        "fib_mod",
        "n",
        "Return the `n`-th Fibonacci number modulo {m}, where fib(0) = 0 and fib(1) = 1.",
        "def fib_mod(n):\n    a, b = 0, 1\n    for _ in range(n):\n"
        "        a, b = b, (a + b) % {m}\n    return a\n",
        lambda rng: {"m": rng.choice([97, 1000, 1009, 10007, 65536])},
        _fib_inputs,
    ),
    Family(
        "flatten",
        2,
        "flatten",
        "items",
        "Flatten the arbitrarily nested list `items` "
        "into one flat list of its non-list elements, in order.",
        "def flatten(items):\n    out = []\n    for x in items:\n"
        "        if isinstance(x, list):\n            out.extend(flatten(x))\n"
        "        else:\n            out.append(x)\n    return out\n",
        _none,
        _flatten_inputs,
    ),
    Family(
        "to_base",
        2,
        "to_base",
        "n",
        "Return the non-negative integer `n` written in base "
        "{base} as a string of digits (digits above 9 are lowercase letters, 0 is '0').",
        "def to_base(n):\n    digits = '0123456789abcdefghijklmnopqrstuvwxyz'\n"
        "    if n == 0:\n        return '0'\n    out = ''\n    while n:\n"
        "        n, r = divmod(n, {base})\n        out = digits[r] + out\n    return out\n",
        lambda rng: {"base": rng.choice([2, 3, 5, 7, 8, 12, 16, 36])},
        _base_inputs,
    ),
    Family(
        "gcd_list",
        2,
        "gcd_all",
        "numbers",
        "Return the greatest common divisor of the "
        "positive integers in the non-empty list `numbers`.",
        "def gcd_all(numbers):\n    from math import gcd\n    g = 0\n"
        "    for x in numbers:\n        g = gcd(g, x)\n    return g\n",
        _none,
        _gcd_inputs,
    ),
    Family(
        "balanced",
        3,
        "is_balanced",
        "text",
        "Return True if every bracket in `text` "
        "((), [] and {}) is closed in the right order, ignoring all other characters, "
        "and False otherwise.",
        "def is_balanced(text):\n    pairs = {')': '(', ']': '[', '}': '{'}\n"
        "    stack = []\n    for c in text:\n        if c in '([{':\n"
        "            stack.append(c)\n        elif c in pairs:\n"
        "            if not stack or stack.pop() != pairs[c]:\n                return False\n"
        "    return not stack\n",
        _none,
        _balanced_inputs,
    ),
    Family(
        "merge_intervals",
        3,
        "merge_intervals",
        "intervals",
        "Merge the overlapping closed "
        "intervals [start, end] in `intervals` (intervals that touch overlap) and return "
        "the merged ones as [start, end] lists sorted by start.",
        "def merge_intervals(intervals):\n    out = []\n"
        "    for start, end in sorted(intervals):\n        if out and start <= out[-1][1]:\n"
        "            out[-1][1] = max(out[-1][1], end)\n        else:\n"
        "            out.append([start, end])\n    return out\n",
        _none,
        _interval_inputs,
    ),
    Family(
        "top_words",
        3,
        "top_words",
        "text",
        "Return the {k} most frequent words of `text` "
        "(split on whitespace, compared in lowercase), most frequent first, ties in "
        "alphabetical order; fewer if there are fewer distinct words.",
        "def top_words(text):\n    counts = {{}}\n    for w in text.lower().split():\n"
        "        counts[w] = counts.get(w, 0) + 1\n"
        "    ranked = sorted(counts, key=lambda w: (-counts[w], w))\n"
        "    return ranked[:{k}]\n",
        lambda rng: {"k": rng.randint(1, 3)},
        _topk_inputs,
    ),
    Family(
        "rpn",
        3,
        "eval_rpn",
        "tokens",
        "Evaluate the reverse Polish notation expression "
        "`tokens` (a list of strings: integers and the operators +, - and *) and return "
        "the integer result.",
        "def eval_rpn(tokens):\n    stack = []\n    for t in tokens:\n"
        "        if t in ('+', '-', '*'):\n            b, a = stack.pop(), stack.pop()\n"
        "            stack.append(a + b if t == '+' else a - b if t == '-' else a * b)\n"
        "        else:\n            stack.append(int(t))\n    return stack[-1]\n",
        _none,
        _rpn_inputs,
    ),
)
"""Every family, easiest first."""
