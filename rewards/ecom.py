"""The state-diff reward of ``rlvr/Ecom-v0`` (pure and torch-free).

The store's mutable state is a snapshot ``{"cart": {item: qty}, "orders": {id: {field:
value}}}``. :func:`facts` flattens it into atomic facts: one per cart unit ``("cart",
"I123456#2", "unit", "1")`` and one per order field or per entry of a dict field
``("orders", "O123456", "returned.I123456", "1")``. The diff of two snapshots is the set of
facts added (``+``) and removed (``-``), so every collateral write counts.

Success ``S = [diff == goal diff] * [answer right] * [no policy violation] * [no unseen id]``.
Answers: exact (ids in any case), numbers within 0.01, or *keyed* (:func:`keyed_matches`: the
same order id and the same status / refusal-rule words, so ``ineligible`` alone or a list of
every status never matches). Partial credit ``q`` is the mean of the parts that apply: F1 of
the diff against the goal diff (when either is non-empty), the answer credit (when an answer
is expected: 1 if right; the env gives a wrong product 0.5 only if it meets every
constraint). A forfeit scores 0 with ``q = 0``. Shaped reward::

    r = S * (1 - 0.1 * min(1, max(0, T - T_oracle) / T_max)) + (1 - S) * 0.5 * q * (1 - v)

with ``v = 1`` on a violation or an unseen id, so every success scores >= 0.9, every failure
<= 0.5, and efficiency is paid only on success. ``mode="binary"`` pays ``S``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Fact = tuple[str, ...]
RewardMode = Literal["shaped", "binary"]


def facts(snapshot: Mapping[str, Any]) -> frozenset[Fact]:
    """The atomic facts of a store snapshot (see the module docstring)."""
    out: set[Fact] = set()
    for item, qty in snapshot.get("cart", {}).items():
        out.update(("cart", f"{item}#{k}", "unit", "1") for k in range(1, int(qty) + 1))
    for oid, order in snapshot.get("orders", {}).items():
        for key, value in order.items():
            if isinstance(value, Mapping):
                out.update(("orders", oid, f"{key}.{k}", json.dumps(v)) for k, v in value.items())
            else:
                out.add(("orders", oid, key, json.dumps(value)))
    return frozenset(out)


def state_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> frozenset[Fact]:
    """Facts added (``("+", ...)``) and removed (``("-", ...)``) between two snapshots."""
    old, new = facts(before), facts(after)
    return frozenset({("+", *f) for f in new - old} | {("-", *f) for f in old - new})


def diff_f1(delta: Iterable[Fact], goal: Iterable[Fact]) -> float:
    """F1 of ``delta`` against ``goal``; 1 when both are empty."""
    got, want = set(delta), set(goal)
    if not got and not want:
        return 1.0
    hit = len(got & want)
    if not hit:
        return 0.0
    precision, recall = hit / len(got), hit / len(want)
    return 2 * precision * recall / (precision + recall)


ID_RE = re.compile(r"\b(?:P\d{6}|I\d{6}|U\d{5}|O\d{6}|A\d{4}|pm_[a-z_]+_\d{4})\b", re.IGNORECASE)
"""Every store id, in any letter case (:func:`canonical_id` gives the store's spelling)."""
STATUSES = ("pending", "processed", "shipped", "delivered", "cancelled")
RULES = ("return window", "final sale")
REFUSAL = "ineligible"
DATE_RE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
DAYS_RE = re.compile(r"\b(\d+) days?\b", re.IGNORECASE)


def canonical_id(text: str) -> str:
    """The store's spelling of an id matched by :data:`ID_RE` (``i123456`` -> ``I123456``)."""
    return text.lower() if text.lower().startswith("pm_") else text.upper()


def ids_in(text: str) -> set[str]:
    """The store ids in ``text``, canonically spelled, whatever their case."""
    return {canonical_id(m) for m in ID_RE.findall(text)}


def _terms(text: str) -> tuple[set[str], set[str], bool]:
    words = " " + re.sub(r"[^a-z0-9]+", " ", text.lower().replace("canceled", "cancelled")) + " "
    statuses = {s for s in STATUSES if f" {s} " in words}
    rules = {r for r in RULES if f" {r} " in words}
    return statuses, rules, f" {REFUSAL} " in words


def _evidence_matches(given: str, expected: str) -> bool:
    """When ``expected`` cites a date (a return window refusal: the delivery date and the
    days since delivery), ``given`` must cite that date or that number of days, and every
    date and day count it cites must be the expected one."""
    want_dates, want_days = set(DATE_RE.findall(expected)), set(DAYS_RE.findall(expected))
    if not want_dates and not want_days:
        return True
    got_dates, got_days = set(DATE_RE.findall(given)), set(DAYS_RE.findall(given))
    if not got_dates and not got_days:
        return False
    return (not got_dates or got_dates == want_dates) and (not got_days or got_days == want_days)


def keyed_matches(given: str, expected: str) -> bool:
    """A keyed answer: the same ids, the same refusal flag, and in each group of key words
    (order statuses; refusal rules) that the expected answer uses, the same words; so a
    refusal must name the order and what blocks it, and no answer can list every option.
    A refusal must also carry the blocking fact, which only reading the order tells: the
    final-sale line's item id (an id, so compared with the ids) and, for the return window,
    the delivery date or the exact number of days since delivery."""
    if ids_in(given) != ids_in(expected):
        return False
    got_status, got_rules, got_refusal = _terms(given)
    want_status, want_rules, want_refusal = _terms(expected)
    return (
        got_refusal == want_refusal
        and (not want_status or got_status == want_status)
        and (not want_rules or got_rules == want_rules)
        and _evidence_matches(given, expected)
    )


def answer_matches(given: str | None, expected: str, kind: str) -> bool:
    """Exact normalised match (ids in any case); numbers within 0.01; ``keyed`` answers by
    :func:`keyed_matches`; no partial credit."""
    if given is None:
        return False
    text = given.strip().lower().rstrip(".")
    if kind == "keyed":
        return keyed_matches(given[:2000], expected)
    if kind == "number":
        try:
            return math.isclose(
                float(text.lstrip("$").replace(",", "")), float(expected), abs_tol=0.01
            )
        except ValueError:
            return False
    return text == expected.strip().lower()


@dataclass(frozen=True)
class EcomScore:
    """Every part of the verdict; ``components`` are the ``reward_components``."""

    success: bool
    reward: float
    components: Mapping[str, float]


def score_episode(
    *,
    delta: frozenset[Fact],
    goal_delta: frozenset[Fact],
    answer_ok: bool | None,
    answer_credit: float,
    violations: int,
    unseen_ids: int,
    turns: int,
    t_oracle: int,
    t_max: int,
    mode: RewardMode = "shaped",
    forfeit: bool = False,
) -> EcomScore:
    """The reward of one episode.

    Args:
        answer_ok: whether the submitted answer is right; ``None`` when no answer is expected.
        answer_credit: partial credit of the answer in [0, 1] (1 when right).
        violations / unseen_ids: counts of policy violations and of unseen ids used.
        turns, t_oracle, t_max: the agent's turns, the reference dialogue's, the budget.
        forfeit: the episode was given up (3 invalid calls in a row, or the customer gave
            up): no success, ``q = 0`` and every credit component 0, so the components agree
            with the reward 0.
    """
    if t_max < 1 or t_oracle < 0 or turns < 0:
        raise ValueError(
            f"need t_max >= 1 and non-negative turns, got {t_max}, {t_oracle}, {turns}"
        )
    f1 = diff_f1(delta, goal_delta)
    exact = delta == goal_delta
    clean = violations == 0 and unseen_ids == 0
    success = exact and answer_ok is not False and clean and not forfeit
    parts = ([f1] if (delta or goal_delta) else []) + (
        [answer_credit] if answer_ok is not None else []
    )
    q = 0.0 if forfeit else sum(parts) / len(parts) if parts else 0.0
    if forfeit:
        f1, exact, answer_ok = 0.0, False, False
    efficiency = 1.0 - min(1.0, max(0, turns - t_oracle) / t_max)
    if mode == "binary":
        reward = float(success)
    elif success:
        reward = 1.0 - 0.1 * (1.0 - efficiency)
    elif forfeit:
        reward = 0.0
    else:
        reward = 0.5 * q * float(clean)
    components = {
        "success": float(success),
        "state_f1": f1,
        "state_exact": float(exact),
        "answer": 1.0 if answer_ok is None else float(answer_ok),
        "partial": q,
        "no_violation": float(violations == 0),
        "no_unseen_id": float(unseen_ids == 0),
        "efficiency": efficiency if success else 0.0,
        "forfeit": float(forfeit),
    }
    return EcomScore(success, round(min(1.0, max(0.0, reward)), 6), components)
