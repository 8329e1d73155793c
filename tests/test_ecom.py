"""rlvr/Ecom-v0: the world, tools, user simulator, reward, solver, probes and determinism."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys

import gymnasium as gym
import pytest

import rlvr
from rlvr.agents.scripted.ecom import EcomSolver
from rlvr.agents.scripted.ecom_probes import PROBE_FAMILIES, PROBES, CheapestPick
from rlvr.envs import AdaptiveDifficulty, play
from rlvr.envs.ecom import FAMILIES, EcomEnv
from rlvr.envs.ecom.difficulty import theta
from rlvr.envs.ecom.env import MAX_TURNS
from rlvr.envs.ecom.user_sim import GIVE_UP, YES
from rlvr.envs.tool_calls import format_tool_call
from rlvr.rewards.ecom import answer_matches, diff_f1, facts, score_episode, state_diff

gym.register_envs(rlvr)
SOLVER = EcomSolver()


def _make(**kwargs):
    return gym.make("rlvr/Ecom-v0", max_episode_steps=200, **kwargs)


# ------------------------------------------------------------------ solver and oracle


@pytest.mark.parametrize("family", FAMILIES)
def test_scripted_solver_solves_every_family_at_levels_0_to_5(family):
    env = _make(family=family)
    results = [
        play(env, SOLVER, seed=seed, options={"difficulty": level})
        for level in range(6)
        for seed in range(16)
    ]
    rewards = [t.outcome.reward for t in results if t.outcome is not None]
    assert len(rewards) == len(results)
    assert sum(r == 1.0 for r in rewards) / len(results) >= 0.99


def test_oracle_solves_harder_levels_too():
    env = _make()
    for seed in range(20):
        transcript = play(
            env,
            lambda d: env.unwrapped.oracle_action(),
            seed=seed,
            options={"difficulty": 6 + seed % 5},
        )
        assert transcript.success and transcript.outcome.reward == 1.0


# ------------------------------------------------------------------ probes


@pytest.mark.parametrize("name", sorted(PROBES))
def test_reward_hacking_probes_score_near_zero(name):
    for family in ("mixed", *PROBE_FAMILIES.get(name, ())):
        for level in (0, 3, 6, 10):
            env = _make(difficulty=level, family=family)
            rewards = [play(env, PROBES[name](), seed=seed).total_reward for seed in range(48)]
            assert sum(rewards) / len(rewards) <= 0.05, (name, family, level, rewards)


def test_a_blind_pick_on_find_product_earns_nothing_when_a_constraint_is_untold():
    rewards = []
    for level in (3, 6, 10):
        env = _make(family="find_product", difficulty=level)
        for seed in range(24):
            transcript = play(env, CheapestPick("revealed"), seed=seed)
            step = env.unwrapped.scenario.steps[0]
            if len(step.revealed) < step.requirements:
                rewards.append(transcript.total_reward)
    assert len(rewards) >= 20 and sum(rewards) / len(rewards) <= 0.05


# ------------------------------------------------------------------ reward


def test_state_facts_count_cart_units_and_order_fields():
    before = {"cart": {}, "orders": {"O1": {"status": "pending", "returned": {}}}}
    after = {"cart": {"I1": 2}, "orders": {"O1": {"status": "cancelled", "returned": {"I2": 1}}}}
    delta = state_diff(before, after)
    assert ("+", "cart", "I1#2", "unit", "1") in delta
    assert ("-", "orders", "O1", "status", '"pending"') in delta
    assert ("+", "orders", "O1", "returned.I2", "1") in delta
    assert len(delta) == 5 and len(facts(after)) == 4
    assert diff_f1(delta, delta) == 1.0 and diff_f1(set(), set()) == 1.0
    assert diff_f1(set(list(delta)[:1]), delta) == pytest.approx(2 * 0.2 / 1.2)


def _score(**overrides):
    args = dict(
        delta=frozenset({("+", "a")}),
        goal_delta=frozenset({("+", "a")}),
        answer_ok=None,
        answer_credit=0.0,
        violations=0,
        unseen_ids=0,
        turns=5,
        t_oracle=5,
        t_max=14,
    )
    args.update(overrides)
    return score_episode(**args)


def test_every_success_beats_every_failure_and_efficiency_only_on_success():
    slow_success = _score(turns=200)
    assert slow_success.success and slow_success.reward == pytest.approx(0.9)
    assert _score().reward == 1.0
    best_failure = _score(answer_ok=False, answer_credit=0.9)
    assert not best_failure.success and best_failure.reward <= 0.5
    extra = _score(delta=frozenset({("+", "a"), ("+", "b")}))
    assert not extra.success and extra.reward == pytest.approx(0.5 * 2 / 3)
    quick_nothing = _score(delta=frozenset(), turns=1)
    assert quick_nothing.reward == 0.0  # quitting early earns no efficiency
    violated = _score(violations=1)
    assert not violated.success and violated.reward == 0.0
    assert _score(unseen_ids=1).reward == 0.0
    assert _score(mode="binary", turns=100).reward == 1.0
    assert _score(mode="binary", answer_ok=False, answer_credit=0.5).reward == 0.0
    assert set(_score().components) >= {"success", "state_f1", "answer", "efficiency"}


def test_keyed_answers_need_the_order_and_what_blocks_it():
    want = "ineligible: O123456 shipped"
    assert answer_matches("Ineligible - order o123456 was already SHIPPED.", want, "keyed")
    for wrong in (
        "ineligible",
        "ineligible: O123456",
        "ineligible: O123456 processed",
        "ineligible: O123456 shipped processed",
        "O123456 shipped",
        "ineligible: O654321 shipped",
        "0",
    ):
        assert not answer_matches(wrong, want, "keyed"), wrong
    window = "ineligible: O123456 return window since 2026-04-17 (45 days)"
    assert answer_matches(
        "ineligible: O123456, delivered 45 days ago: return window", window, "keyed"
    )
    assert answer_matches("Ineligible: o123456 return window (since 2026-04-17)", window, "keyed")
    for wrong in (
        "ineligible: O123456 return window",
        "ineligible: O123456 return window since 2026-04-18",
        "ineligible: O123456 return window, 44 days",
        "ineligible: O123456 return window since 2026-04-17 (44 days)",
        "ineligible: O123456 return window 2026-04-17 2026-04-18",
        "ineligible: O123456 return window final sale 2026-04-17",
    ):
        assert not answer_matches(wrong, window, "keyed"), wrong
    final = "ineligible: O123456 final sale I654321"
    assert answer_matches("ineligible: O123456 final sale (item i654321)", final, "keyed")
    assert not answer_matches("ineligible: O123456 final sale", final, "keyed")
    assert not answer_matches("ineligible: O123456 final sale I111111", final, "keyed")
    assert answer_matches("O123456 delivered", "O123456 delivered", "keyed")
    assert not answer_matches("delivered", "O123456 delivered", "keyed")
    assert not answer_matches("O123456 ineligible delivered", "O123456 delivered", "keyed")


def test_answers_match_exactly_or_within_a_cent():
    assert answer_matches(" Delivered. ", "delivered", "text")
    assert answer_matches("$12.345", "12.34", "number")
    assert not answer_matches("12.40", "12.34", "number")
    assert not answer_matches("delivered or pending", "delivered", "text")
    assert not answer_matches(None, "x", "text")


# ------------------------------------------------------------------ env behaviour


def _reset(family="cancel", level=2, seed=3, **kwargs):
    env = _make(family=family, difficulty=level, **kwargs)
    observation, info = env.reset(seed=seed)
    return env, observation, info


def test_reset_info_holds_tools_policy_hashes_and_budget():
    _env, observation, info = _reset()
    assert {t["function"]["name"] for t in info["tools"]} >= {
        "search_products",
        "add_to_cart",
        "checkout",
        "cancel_order",
        "return_items",
        "exchange_items",
        "policy_lookup",
        "ask_user",
        "ask_confirmation",
        "submit",
    }
    assert "30 days" in info["policy"] and info["task_family"] == "cancel"
    assert len(info["world_hash"]) == 16 and len(info["goal_hash"]) == 16
    assert info["turn_budget"] == 2 * info["oracle_len"] + 4
    assert "cancel my order" in observation


@pytest.mark.parametrize(
    "action",
    [
        "not json at all",
        '{"name": "teleport", "arguments": {}}',
        '{"name": "add_to_cart", "arguments": {"item_id": 5, "quantity": "two"}}',
        '{"name": "get_order", "arguments": {"order_id": "O000000"}}',
        "{" * 50_000,
        "x" * 200_000,
    ],
)
def test_bad_actions_get_an_error_and_three_in_a_row_end_with_zero(action):
    env, _, _ = _reset()
    for k in range(3):
        observation, reward, terminated, truncated, info = env.step(action)
        assert isinstance(observation, str) and observation and not truncated
        assert info["invalid_actions"] == k + 1 and terminated == (k == 2)
    assert reward == 0.0 and info["success"] is False
    components = info["reward_components"]
    assert components["forfeit"] == 1.0 and components["partial"] == 0.0
    assert components["state_f1"] == 0.0 and components["success"] == 0.0


def test_hermes_tool_call_form_is_read():
    env, _, _ = _reset(family="find_product")
    tag = "<tool_call>" + format_tool_call("view_cart", {}) + "</tool_call>"
    observation, *_ = env.step(tag)
    assert json.loads(observation) == {"cart": [], "total": 0}


def _oracle_calls(env):
    return env.unwrapped.reference_solution().split("\n")


def test_a_write_without_confirmation_is_a_violation_even_if_the_state_is_right():
    env, _, _ = _reset(family="cancel", level=0, seed=1)
    calls = [c for c in _oracle_calls(env) if '"ask_confirmation"' not in c]
    for call in calls:
        *_, terminated, _, info = env.step(call)
    assert terminated and info["success"] is False
    assert info["reward_components"]["no_violation"] == 0.0
    assert info["reward_components"]["state_exact"] == 1.0


def test_partial_work_earns_partial_credit_and_collateral_writes_fail():
    env, _, _ = _reset(family="cart_build", level=3, seed=2)
    calls = _oracle_calls(env)
    assert sum('"add_to_cart"' in c for c in calls) == 4  # two items, each confirmed
    last_confirm = max(i for i, c in enumerate(calls) if '"ask_confirmation"' in c)
    for call in calls[:last_confirm]:
        env.step(call)
    *_, reward, terminated, _, info = env.step(calls[-1])
    assert terminated and not info["success"] and 0.0 < reward <= 0.5
    assert 0.0 < info["reward_components"]["state_f1"] < 1.0

    env.reset(seed=2)
    for call in calls[:-1]:
        env.step(call)
    extra = json.loads(calls[-2])["arguments"]
    env.step(format_tool_call("add_to_cart", {**extra, "quantity": 1}))
    *_, reward, terminated, _, info = env.step(calls[-1])
    assert terminated and not info["success"] and reward == 0.0
    assert info["reward_components"]["state_exact"] == 0.0


def _to_confirmation(family="cancel", level=0, seed=4):
    env, _, _ = _reset(family=family, level=level, seed=seed)
    calls = _oracle_calls(env)
    index = next(i for i, c in enumerate(calls) if '"ask_confirmation"' in c)
    for call in calls[:index]:
        env.step(call)
    return env, json.loads(calls[index])


def test_the_user_says_yes_only_to_the_goal_and_corrections_name_no_argument():
    env, confirm = _to_confirmation()
    args = confirm["arguments"]["arguments"]
    wrong = dict(args, reason="changed my mind" if args["reason"] != "changed my mind" else "")
    observation, *_, info = env.step(
        format_tool_call("ask_confirmation", {"tool": "cancel_order", "arguments": wrong})
    )
    assert observation.startswith("No") and info["role"] == "user"
    assert "reason" not in observation and "order_id" not in observation
    observation, *_ = env.step(json.dumps(confirm))
    assert observation.startswith("Yes")
    *_, terminated, _, info = env.step(_oracle_calls(env)[-2])
    *_, terminated, _, info = env.step(_oracle_calls(env)[-1])
    assert terminated and info["reward_components"]["state_exact"] == 1.0
    assert not info["success"] and info["reward_components"]["no_violation"] == 0.0


def test_the_customer_gives_up_after_two_wrong_proposals():
    env, confirm = _to_confirmation()
    args = confirm["arguments"]["arguments"]
    others = [r for r in ("changed my mind", "ordered by mistake", "") if r != args["reason"]]
    for reason in others[:2]:
        wrong = {"tool": "cancel_order", "arguments": dict(args, reason=reason)}
        observation, reward, terminated, _, info = env.step(
            format_tool_call("ask_confirmation", wrong)
        )
        if terminated:
            break
    assert terminated and observation == GIVE_UP and reward == 0.0
    assert info["reward_components"]["partial"] == 0.0
    assert info["reward_components"]["forfeit"] == 1.0


def test_confirmations_do_not_reveal_policy_traps():
    replies: dict[bool, set[str]] = {}
    for seed in range(40):
        env, _, _ = _reset(family="cancel", level=10, seed=seed)
        scenario = env.unwrapped.scenario
        trap = not scenario.steps[0].writes
        wish = dict((scenario.steps[0].wish or scenario.steps[0].writes)[0][1])
        for call in _oracle_calls(env)[:3]:
            env.step(call)
        observation, *_ = env.step(
            format_tool_call("ask_confirmation", {"tool": "cancel_order", "arguments": wish})
        )
        replies.setdefault(trap, set()).add(observation)
    assert replies[True] and replies[False] and replies[True] <= set(YES) >= replies[False]


@pytest.mark.parametrize("spelling", [str, str.lower])
def test_ids_never_shown_count_as_unseen_in_any_case(spelling):
    env, _, _ = _reset(family="find_product", level=0, seed=5)
    target = env.unwrapped.scenario.answer
    *_, info = env.step(format_tool_call("submit", {"answer": spelling(target)}))
    assert info["success"] is False and info["reward_components"]["no_unseen_id"] == 0.0


@pytest.mark.parametrize(
    "echo", [("ask_user", "slot"), ("policy_lookup", "topic"), ("respond", "text")]
)
def test_ids_the_agent_wrote_itself_are_not_seen(echo):
    env, _, _ = _reset(family="find_product", level=0, seed=5)
    target = env.unwrapped.scenario.answer
    env.step(format_tool_call(echo[0], {echo[1]: target}))
    env.step(format_tool_call("get_item", {"item_id": target}))  # echoes its own argument
    *_, info = env.step(format_tool_call("submit", {"answer": target}))
    assert info["success"] is False and info["reward_components"]["no_unseen_id"] == 0.0


def test_order_lookups_and_writes_need_an_identified_customer():
    env, _, _ = _reset(family="order_status", level=0, seed=1)
    calls = [c for c in _oracle_calls(env) if '"find_user_by_email"' not in c]
    for call in calls:
        *_, terminated, _, info = env.step(call)
    assert terminated and not info["success"]
    assert "before identifying" in info["verification"]


def test_the_env_ends_every_episode_before_the_registry_time_limit():
    limit = gym.spec("rlvr/Ecom-v0").max_episode_steps
    assert limit > MAX_TURNS
    for level in (15, 20, 30):
        for seed in range(6):
            env = _make(difficulty=level, family="journey" if seed % 2 else "mixed")
            _, info = env.reset(seed=seed)
            assert info["turn_budget"] <= MAX_TURNS < limit


def test_turn_budget_ends_the_episode_as_a_failure():
    env, _, info = _reset(family="return", level=1)
    turns, terminated = 0, False
    while not terminated:
        turns += 1
        *_, reward, terminated, truncated, step_info = env.step(format_tool_call("view_cart", {}))
        assert not truncated and turns <= info["turn_budget"]
    assert turns == info["turn_budget"] and reward == 0.0
    assert "budget" in step_info["verification"]


def test_binary_mode_pays_success_alone():
    env = _make(family="journey", reward_mode="binary")
    transcript = play(env, SOLVER, seed=0)
    assert transcript.outcome.reward == 1.0 and transcript.success


def test_an_llm_user_can_paraphrase_the_customer():
    seen = []

    def paraphrase(dialogue):
        seen.append(dialogue[-1].content)
        return "In other words: " + dialogue[-1].content

    env = EcomEnv(family="find_product", difficulty=2, paraphraser=paraphrase)
    observation, _ = env.reset(seed=0)
    assert observation.startswith("In other words: ") and len(seen) == 1
    observation, *_, info = env.step(format_tool_call("ask_user", {"slot": "color"}))
    assert info["role"] == "user" and observation.startswith("In other words: ")
    observation, *_ = env.step(format_tool_call("view_cart", {}))
    assert not observation.startswith("In other words")


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="family"):
        EcomEnv(family="groceries")
    with pytest.raises(ValueError, match="reward_mode"):
        EcomEnv(reward_mode="dense")
    with pytest.raises(ValueError):
        theta(-1)


def test_difficulty_axes_are_monotone():
    levels = [theta(d) for d in range(15)]
    for a, b in itertools.pairwise(levels):
        for axis in (
            "constraints",
            "distractors",
            "p_missing",
            "catalog_items",
            "cart_items",
            "variants",
            "p_oos",
            "p_trap",
            "p_noise",
            "p_switch",
            "orders",
            "journey_steps",
        ):
            assert getattr(b, axis) >= getattr(a, axis), axis
        assert b.page_size <= a.page_size


def test_one_adaptive_curriculum_per_family_promotes():
    env = AdaptiveDifficulty(_make(family="order_status"), episodes_per_check=4)
    for seed in range(30):
        play(env, SOLVER, seed=seed)
    assert env.state_dict()["high"] >= 2


def test_task_id_replays_the_same_episode():
    env, observation, info = _reset(family="exchange", level=4, seed=9)
    again, info2 = env.reset(options={"task_id": info["task_id"]})
    assert again == observation and info2["world_hash"] == info["world_hash"]


# ------------------------------------------------------------------ determinism

_DIGEST = """
import gymnasium as gym, hashlib, rlvr
from rlvr.envs import play
from rlvr.agents.scripted.ecom import EcomSolver
gym.register_envs(rlvr)
env = gym.make("rlvr/Ecom-v0", difficulty=(0, 6), max_episode_steps=200)
h = hashlib.sha256()
for seed in range(12):
    obs, info = env.reset(seed=seed)
    h.update((obs + info["world_hash"] + info["goal_hash"]).encode())
    t = play(env, EcomSolver(), seed=seed)
    h.update(repr([(x.action, x.observation, x.reward) for x in t.turns]).encode())
print(h.hexdigest())
"""


def test_same_seed_same_episode_across_processes_and_hash_seeds():
    digests = set()
    for hash_seed in ("0", "12345"):
        environ = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", _DIGEST], capture_output=True, text=True, env=environ, check=True
        )
        digests.add(out.stdout.strip())
    local: dict[str, str] = {}
    exec(_DIGEST.replace("print(h.hexdigest())", "local['d'] = h.hexdigest()"), {"local": local})
    assert len(digests) == 1 and digests == {local["d"]}
    assert len(hashlib.sha256(b"").hexdigest()) == 64
