"""``rlvr/Ecom-v0``: shopping and customer-service dialogues with tools, a scripted user with a
hidden goal, and a verifiable state-diff reward."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from faker import Faker

from rlvr.envs.core import DifficultySpec, TextEnv
from rlvr.envs.ecom.difficulty import Theta, theta
from rlvr.envs.ecom.families import (
    FAMILIES,
    Scenario,
    generate_scenario,
    satisfies,
    step_constraints,
)
from rlvr.envs.ecom.tools import (
    STORE_TOOLS,
    TOOLS,
    WRITE_TOOLS,
    ToolError,
    search_products,
    write_violation,
)
from rlvr.envs.ecom.user_sim import MAX_WRONG_PROPOSALS, ScriptedUser
from rlvr.envs.ecom.world import CATEGORIES, POLICY, Database, World
from rlvr.envs.tool_calls import (
    FORMAT_HINT,
    ToolCall,
    ToolCallError,
    check_arguments,
    format_tool_call,
    parse_tool_call,
)
from rlvr.envs.types import Message, Outcome, Reply, Task
from rlvr.rewards.ecom import RewardMode, answer_matches, ids_in, score_episode, state_diff

Role = Literal["user", "tool"]
PARAPHRASE_PROMPT = (
    "Rewrite the customer's message below in your own words, as the same customer. Keep every "
    "value exactly as written (names, emails, numbers, colors, sizes, brands, reasons); add no "
    "new information. Reply with the rewritten message only."
)
MAX_INVALID_IN_A_ROW = 3
MAX_TURNS = 200
"""Cap of the per-instance turn budget; the registry's ``max_episode_steps`` stays above it,
so the env always ends the episode itself, with a scored terminal ``info``."""
IDENTIFIED_TOOLS = ("get_order", "checkout", "cancel_order", "return_items", "exchange_items")
"""Tools the identity policy guards: calling one before a ``find_user_*`` succeeded is a
violation."""
SHOWING_TOOLS = (
    "search_products",
    "get_product",
    "get_item",
    "find_user_by_email",
    "find_user_by_name_zip",
    "get_user",
    "get_order",
    "view_cart",
    "checkout",
)
"""Store tools whose output shows ids (never the ids of the call's own arguments)."""
TOOLS_JSON = json.dumps(TOOLS)

SYSTEM_PROMPT = (
    "You are the customer-service and shopping assistant of an online store. Help the customer "
    "with their requests using the tools: call exactly one tool per turn, as a JSON object "
    '{"name": "TOOL", "arguments": {...}} (or inside <tool_call></tool_call> tags). Talk to the '
    "customer only through ask_user, ask_confirmation and respond. When every request is done, "
    "call submit with the answer the customer asked for (or an empty answer).\n\n"
    "Categories and their attributes:\n{categories}\n\n{policy}"
)


def snapshot(db: Database) -> dict[str, Any]:
    """The diffable state of the store (cart and orders)."""
    return {"cart": db.cart, "orders": db.orders}


class EcomEnv(TextEnv):
    """A customer with a hidden goal talks to the agent, who acts on a synthetic store.

    **Tasks.** Each reset builds a seeded store (Faker names and streets, 12 categories with
    attribute schemas, products with 2..8 variants, users with addresses, payment methods and
    orders, a fixed ``today``) and a goal from one family: ``find_product``, ``cart_build``,
    ``checkout``, ``cancel``, ``return``, ``exchange``, ``order_status``, ``policy_qa``,
    ``journey`` (2-4 requests in a row). Product requests plant ``2 + 2d`` near misses that each
    break one constraint; the answer is the cheapest in-stock item meeting all of them, unique
    by construction. Policy traps (an order that is no longer pending to cancel; a return,
    exchange or refund question out of the window or of a final-sale category) must be
    refused with ``ineligible: <order id> <blocker>`` (the order's status, ``return window``
    or ``final sale``); an order-status question is answered ``<order id> <status>``.
    Difficulty moves every axis (:mod:`rlvr.envs.ecom.difficulty`).

    **Observation.** The customer's first message; then, per step, a tool result
    (``info["role"] == "tool"``, JSON) or the customer's reply to ``ask_user``,
    ``ask_confirmation`` and ``respond`` (``info["role"] == "user"``).

    **Action.** One tool call per turn, ``{"name": ..., "arguments": {...}}`` (a json fence
    or Hermes ``<tool_call>`` tags work too); the tools are in ``info["tools"]``.

    **Reward.** 0 on every step but the last. At the end, from the state diff of the store
    (:mod:`rlvr.rewards.ecom`): success iff the diff equals the goal's diff exactly, the answer
    is right, no policy was broken and no id was used before a store tool's output showed it
    (ids in any letter case; ids the agent wrote itself, echoed back by ``ask_user``,
    ``policy_lookup`` or a lookup of its own argument, never count as shown). Violations: a
    write without the customer's confirmation of that exact call; a confirmation asked for a
    call the customer did not want; ``get_order``, ``checkout`` or an order write before a
    ``find_user_*`` identified the customer; a return or exchange the policy excludes.
    Shaped: a success scores ``1 - 0.1 * min(1, max(0, T - T_oracle) / T_max)`` (>= 0.9), a
    failure ``0.5 * q`` (<= 0.5) where ``q`` is the F1 of the state facts and the answer credit
    (a wrong item earns 0.5 only if it meets every constraint, else 0), 0 after a violation.
    ``reward_mode="binary"`` pays the success alone. ``reward_components``: ``success``,
    ``state_f1``, ``state_exact``, ``answer``, ``partial``, ``no_violation``,
    ``no_unseen_id``, ``efficiency``, ``forfeit``.

    **Episode end.** Terminated by ``submit``; by a forfeit (reward 0 and every credit
    component 0): 3 unreadable or refused calls in a row, or the customer giving up at the
    second proposal they did not ask for; or when the per-instance turn budget
    ``T_max = min(200, 2 * T_oracle + 4)`` is used up (scored like a submit without answer).
    The registry's ``max_episode_steps`` (400) stays above every budget, so the env always
    ends the episode itself.

    **Info.** At reset: ``tools``, ``policy``, ``task_family``, ``world_hash``, ``goal_hash``,
    ``turn_budget``, ``oracle_len``; every step: ``turn``, ``invalid_actions``; at the end also
    ``is_success`` and the contract keys.

    Args:
        difficulty: level or ``(low, high)`` drawn per episode (default ``(0, 3)``).
        family: one of the families above, or ``"mixed"`` (drawn per episode). Run one
            :class:`~rlvr.envs.curriculum.AdaptiveDifficulty` per family for per-family RLVE.
        reward_mode: ``"shaped"`` or ``"binary"``.
        paraphraser: optional LLM user: any :class:`rlvr.agents.Agent` (or callable from a
            dialogue to text) that rewrites the customer's messages. This makes the env
            nondeterministic and the scripted solver's templates no longer apply; the goal,
            confirmations and reward are unchanged. Off by default.
        render_mode: ``None`` or ``"ansi"``.

    Version History:
        * v0: initial version: world, 21 tools, scripted user, 9 families, state-diff reward;
          refusals and order statuses are keyed answers that cite their evidence,
          confirmations never reveal traps and name no wrong argument, wrong proposals cost,
          find_product partial credit needs every constraint met, ids are case-insensitive
          and only store outputs show them, the identity policy is enforced, the budget is
          capped at 200 turns.
    """

    task_prefix = "ecom"

    def __init__(
        self,
        *,
        difficulty: DifficultySpec = (0, 3),
        family: str = "mixed",
        reward_mode: RewardMode = "shaped",
        paraphraser: Callable[[Sequence[Message]], str] | None = None,
        dataset: str | Path | None = None,
        render_mode: str | None = None,
    ):
        if family != "mixed" and family not in FAMILIES:
            raise ValueError(
                f"family must be 'mixed' or one of {', '.join(FAMILIES)}; got {family!r}"
            )
        if reward_mode not in ("shaped", "binary"):
            raise ValueError(f"reward_mode must be 'shaped' or 'binary', got {reward_mode!r}")
        self.family = family
        self.paraphraser = paraphraser
        self.last_outcome: Outcome | None = None
        """The outcome of the last finished episode (for scripts that step the env directly)."""
        self.reward_mode: RewardMode = reward_mode
        self.task_prefix = f"ecom.{family}"
        self._fake = Faker("en_US")
        super().__init__(difficulty=difficulty, dataset=dataset, render_mode=render_mode)

    # ------------------------------------------------------------------ tasks

    def generate_task(self, task_id: str, difficulty: int, rng: random.Random) -> Task:
        family = self.family if self.family != "mixed" else rng.choice(FAMILIES)
        self._fake.seed_instance(rng.getrandbits(64))
        axes = theta(difficulty)
        world, scenario = generate_scenario(rng, self._fake, axes, family)
        email_told = rng.random() >= axes.p_missing
        user_seed = rng.getrandbits(64)
        opening = ScriptedUser(scenario, user_seed, axes.p_noise, email_told).opening()
        return Task(
            task_id=task_id,
            prompt=opening,
            answer=scenario.answer,
            difficulty=difficulty,
            family=family,
            data={
                "world": world,
                "scenario": scenario,
                "theta": axes,
                "email_told": email_told,
                "user_seed": user_seed,
            },
        )

    def system_prompt(self) -> str:
        categories = "\n".join(
            f"- {c.name}: {', '.join(name for name, _ in c.attributes)}" for c in CATEGORIES
        )
        return SYSTEM_PROMPT.replace("{categories}", categories).replace("{policy}", POLICY)

    def tools(self) -> list[dict[str, Any]]:
        return json.loads(TOOLS_JSON)

    # ------------------------------------------------------------------ episode

    def begin(self, task: Task) -> str:
        base: World = task.data["world"]
        self.scenario: Scenario = task.data["scenario"]
        self.theta: Theta = task.data["theta"]
        self.world = World(base.catalog, base.users, base.db.copy(), base.brands)
        self.initial = snapshot(base.db.copy())
        self.goal_delta = self._goal_delta(base)
        self.user = ScriptedUser(
            self.scenario, task.data["user_seed"], self.theta.p_noise, task.data["email_told"]
        )
        self.user.opening()
        self.last_outcome = None
        self.seen: set[str] = set()
        self.looked_up: set[str] = set()
        self.identified = False
        self.invalid_streak = 0
        self.invalid_total = 0
        self.violations: list[str] = []
        self.unseen: list[str] = []
        self.t_oracle = self.scenario.t_oracle
        self.t_max = min(MAX_TURNS, 2 * self.t_oracle + 4)
        self._plan = self._oracle_plan()
        return self._paraphrase(task.prompt)

    def _paraphrase(self, text: str) -> str:
        """The customer's words, rephrased by the optional LLM user (nondeterministic)."""
        if self.paraphraser is None:
            return text
        prompt = [Message("system", PARAPHRASE_PROMPT), Message("user", text)]
        reply = self.paraphraser(prompt)
        return reply if isinstance(reply, str) and reply.strip() else text

    def _goal_delta(self, base: World) -> frozenset[tuple[str, ...]]:
        gold = World(base.catalog, base.users, base.db.copy(), base.brands)
        for step in self.scenario.steps:
            for name, args in step.writes:
                STORE_TOOLS[name](
                    gold, {k: list(v) if isinstance(v, tuple) else v for k, v in args}
                )
        return state_diff(self.initial, snapshot(gold.db))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        observation, info = super().reset(seed=seed, options=options)
        assert self.task is not None
        world_text = "|".join(
            [f"{i.item_id}:{i.product_id}:{i.price}:{i.stock}" for i in self.world.catalog.values()]
            + [repr(u) for u in self.world.users.values()]
            + [json.dumps(self.initial, sort_keys=True)]
        )
        info.update(
            {
                "policy": POLICY,
                "task_family": self.task.family,
                "world_hash": hashlib.sha256(world_text.encode()).hexdigest()[:16],
                "goal_hash": hashlib.sha256(repr(sorted(self.goal_delta)).encode()).hexdigest()[
                    :16
                ],
                "turn_budget": self.t_max,
                "oracle_len": self.t_oracle,
                "invalid_actions": 0,
            }
        )
        return observation, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = super().step(action)
        info["invalid_actions"] = self.invalid_total
        if terminated:
            info["is_success"] = info.get("success", False)
            info["oracle_len"] = self.t_oracle
        return observation, reward, terminated, truncated, info

    def respond(self, action: str) -> Reply:
        call = parse_tool_call(action)
        if isinstance(call, ToolCallError):
            return self._invalid(call.message)
        problem = check_arguments(call, TOOLS)
        if problem is not None:
            return self._invalid(f"{problem} {FORMAT_HINT}")
        if call.name == "submit":
            return self._verdict(str(call.arguments.get("answer", "")), note="submitted")
        try:
            text, role = self._run(call)
        except ToolError as error:
            return self._invalid(f"Error: {error}")
        self.invalid_streak = 0
        if call.name in SHOWING_TOOLS:
            self.seen.update(ids_in(text) - ids_in(json.dumps(call.arguments, default=dict)))
        if self.user.wrong >= MAX_WRONG_PROPOSALS:
            return self._verdict(None, note="the customer gave up", forfeit=True, closing=text)
        if self.turn >= self.t_max:
            return self._verdict(None, note=f"turn budget of {self.t_max} used up")
        return Reply(observation=self._paraphrase(text) if role == "user" else text, role=role)

    def reject(self, reason: str) -> Reply:
        return self._invalid(reason)

    def _invalid(self, message: str) -> Reply:
        self.invalid_streak += 1
        self.invalid_total += 1
        if self.invalid_streak >= MAX_INVALID_IN_A_ROW:
            return self._verdict(None, note="three invalid actions in a row", forfeit=True)
        if self.turn >= self.t_max:
            return self._verdict(None, note=f"turn budget of {self.t_max} used up")
        return Reply(observation=message, role="tool")

    def _run(self, call: ToolCall) -> tuple[str, Role]:
        args = dict(call.arguments)
        if call.name == "ask_user":
            return self.user.ask(str(args["slot"])), "user"
        if call.name == "respond":
            return self.user.free_text(str(args["text"])[:2000]), "user"
        if call.name == "ask_confirmation":
            tool, arguments = str(args["tool"]), args["arguments"]
            if tool not in WRITE_TOOLS:
                raise ToolError(
                    f"{tool[:40]!r} is not a write tool; confirm one of {', '.join(WRITE_TOOLS)}."
                )
            problem = check_arguments(ToolCall(tool, arguments), TOOLS)
            if problem is not None:
                raise ToolError(problem)
            wrong = self.user.wrong
            reply = self.user.confirm(tool, arguments)[0]
            if self.user.wrong > wrong:
                self.violations.append(f"asked to confirm {tool} that the customer did not want")
            return reply, "user"
        if call.name in IDENTIFIED_TOOLS and not self.identified:
            self.violations.append(f"{call.name} before identifying the customer")
        if call.name == "search_products":
            return search_products(self.world, args, self.theta.page_size), "tool"
        if call.name in WRITE_TOOLS:
            return self._write(call.name, args), "tool"
        text = STORE_TOOLS[call.name](self.world, args)
        if call.name == "get_order":
            self.looked_up.add(str(args["order_id"]))
        if call.name.startswith("find_user"):
            self.identified = True
        return text, "tool"

    def _write(self, name: str, args: dict[str, Any]) -> str:
        unseen = sorted(ids_in(json.dumps(args)) - self.seen)
        rule = (
            write_violation(self.world, name, args)
            if name in ("return_items", "exchange_items")
            and args.get("order_id") in self.world.db.orders
            else None
        )
        approved = self.user.take_approval(name, args)
        text = STORE_TOOLS[name](self.world, args)
        self.unseen += unseen
        if not approved:
            self.violations.append(f"{name} without the customer's confirmation")
        if rule is not None:
            self.violations.append(rule)
        return text

    # ------------------------------------------------------------------ verdict

    def _verdict(
        self, answer: str | None, *, note: str, forfeit: bool = False, closing: str | None = None
    ) -> Reply:
        delta = state_diff(self.initial, snapshot(self.world.db))
        expected = self.scenario.answer
        if answer is not None:
            self.unseen += sorted(ids_in(answer[:2000]) - self.seen)
        answer_ok = (
            None
            if expected is None
            else (answer_matches(answer, expected, self.scenario.answer_kind) and self._grounded())
        )
        score = score_episode(
            delta=delta,
            goal_delta=self.goal_delta,
            answer_ok=answer_ok,
            answer_credit=self._answer_credit(answer, bool(answer_ok)),
            violations=len(self.violations),
            unseen_ids=len(self.unseen),
            turns=self.turn,
            t_oracle=self.t_oracle,
            t_max=self.t_max,
            mode=self.reward_mode,
            forfeit=forfeit,
        )
        reward, success = score.reward, score.success
        outcome = Outcome(
            success=success,
            reward=reward,
            reward_components=dict(score.components),
            verification=self._verification(note, delta, answer, answer_ok),
            feedback=self._feedback(delta, answer_ok),
            reference=self.reference_solution(),
        )
        self.last_outcome = outcome
        closing = closing or (
            "Episode over: the request was handled correctly."
            if success
            else "Episode over: the request was not handled correctly."
        )
        return Reply(closing, reward=reward, terminated=True, role="user", outcome=outcome)

    def _grounded(self) -> bool:
        """An answer about an order counts only after the agent looked that order up."""
        target = self.scenario.steps[-1].target
        return target not in self.world.db.orders or target in self.looked_up

    def _answer_credit(self, answer: str | None, right: bool) -> float:
        """1 for the right answer; 0.5 for an item that is not the answer but meets every
        constraint of the request (dearer, or out of stock); else 0, so a blind pick that
        breaks a constraint earns nothing."""
        if right:
            return 1.0
        if self.scenario.answer_kind != "item" or not answer:
            return 0.0
        item = self.world.catalog.get(answer.strip())
        step = self.scenario.steps[-1]
        constraints = step_constraints(step)
        if item is None or not constraints or item.category != step.subject:
            return 0.0
        return 0.5 if satisfies(item, constraints) else 0.0

    def _verification(
        self, note: str, delta: frozenset[Any], answer: str | None, answer_ok: bool | None
    ) -> str:
        return (
            f"{note}; state diff {len(delta)} facts vs goal {len(self.goal_delta)} "
            f"(exact: {delta == self.goal_delta}); answer {answer!r} "
            f"{'not checked' if answer_ok is None else 'right' if answer_ok else 'wrong'}; "
            f"violations: {self.violations or 'none'}; unseen ids: {self.unseen or 'none'}; "
            f"turns {self.turn} (reference {self.t_oracle}, budget {self.t_max})"
        )

    def _feedback(self, delta: frozenset[Any], answer_ok: bool | None) -> str:
        missing = sorted(self.goal_delta - delta)[:8]
        extra = sorted(delta - self.goal_delta)[:8]
        parts = []
        if missing:
            parts.append(f"Missing changes: {missing}.")
        if extra:
            parts.append(f"Unwanted changes: {extra}.")
        if answer_ok is False:
            parts.append(f"The expected answer was {self.scenario.answer!r}.")
        if self.violations:
            parts.append(f"Policy violations: {'; '.join(self.violations)}.")
        if self.unseen:
            parts.append(f"Ids used before any tool showed them: {', '.join(self.unseen[:8])}.")
        return " ".join(parts) or "Every change and the answer were right."

    # ------------------------------------------------------------------ oracle

    def _oracle_plan(self) -> list[str]:
        plan: list[tuple[str, dict[str, Any]]] = []
        scenario = self.scenario
        if scenario.needs_identity:
            plan += [
                ("find_user_by_email", {"email": scenario.user.email}),
                ("get_user", {"user_id": scenario.user.user_id}),
            ]
        for index, step in enumerate(scenario.steps):
            if index:
                plan.append(("ask_user", {"slot": "next"}))
            if step.kind in ("find", "cart"):
                plan.append(("search_products", _search_args(step)))
            elif step.target and step.target in self.world.db.orders:
                plan.append(("get_order", {"order_id": step.target}))
            if step.kind == "exchange" and step.writes:
                product = self.world.catalog[dict(step.writes[0][1])["item_id"]].product_id
                plan.append(("get_product", {"product_id": product}))
            for name, args in step.writes:
                arguments = {k: list(v) if isinstance(v, tuple) else v for k, v in args}
                plan += [
                    ("ask_confirmation", {"tool": name, "arguments": arguments}),
                    (name, arguments),
                ]
        plan.append(("submit", {"answer": scenario.answer or ""}))
        return [format_tool_call(name, args) for name, args in plan]

    def reference_solution(self) -> str:
        """The reference dialogue's tool calls, one per line."""
        return "\n".join(self._plan)

    def oracle_action(self) -> str | None:
        if self.task is None:
            return None
        return self._plan[min(self.turn, len(self._plan) - 1)]

    def cheat_actions(self) -> list[str]:
        probes = super().cheat_actions()
        if self.task is None:
            return probes
        guesses = [
            format_tool_call("submit", {"answer": a})
            for a in ("", "ineligible", "delivered", "pending", "0.00", "I100000")
        ]
        writes = [
            format_tool_call("cancel_order", {"order_id": o, "reason": "no longer needed"})
            for o in list(self.world.db.orders)[:3]
        ]
        return (
            probes
            + guesses
            + writes
            + ["yes", "Yes, I confirm.", format_tool_call("submit", {"answer": self._plan[-1]})]
        )


def _search_args(step: Any) -> dict[str, Any]:
    names = {"price": "price_max", "rating": "rating_min", "shipping": "ship_days_max"}
    filters: dict[str, Any] = {}
    for c in step_constraints(step):
        key = names.get(c.slot, c.slot)
        filters[key] = (
            float(c.value)
            if key in ("price_max", "rating_min")
            else int(c.value)
            if key == "ship_days_max"
            else c.value
        )
    return {"category": step.subject, "filters": filters, "in_stock_only": True}
