"""rlvr envs inside TRL: reward functions, datasets, environment classes, and GRPOTrainer runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import rlvr
from rlvr.envs import TextEnv
from rlvr.envs.tool_calls import ToolCall, parse_tool_call
from rlvr.integrations import trl as rt
from rlvr.rewards.math import MathVerdict

gym.register_envs(rlvr)

MATH = "rlvr/Math-v0"


def _oracle(env_id: str, seed: int, **kwargs: Any) -> str:
    env = gym.make(env_id, **kwargs)
    env.reset(seed=seed)
    unwrapped = env.unwrapped
    assert isinstance(unwrapped, TextEnv)
    action = unwrapped.oracle_action()
    assert action is not None
    return action


# ---------------------------------------------------------------- single-turn reward functions


def test_reward_function_names_and_weights() -> None:
    funcs = rt.reward_functions(MATH, difficulty=0)
    assert [f.__name__ for f in funcs] == ["math/reward", "math/answer", "math/format"]
    assert rt.reward_weights(funcs) == [1.0, 0.0, 0.0]
    code = rt.reward_functions("rlvr/Code-v0", difficulty=0)
    assert [f.__name__ for f in code] == ["code/reward", "code/tests_passed"]
    hop = rt.reward_functions("rlvr/MultiHop-v0", difficulty=0)
    assert [f.__name__ for f in hop] == ["multihop/reward", "multihop/outcome", "multihop/rubric"]
    rubric = rt.reward_functions("rlvr/RubricQA-v0", components=["facts"])
    assert [f.__name__ for f in rubric] == ["rubricqa/reward", "rubricqa/facts"]
    with pytest.raises(ValueError, match="exactly one '<env>/reward'"):
        rt.reward_weights(funcs[1:])


def test_known_correct_completion_scores_one_and_wrong_scores_zero() -> None:
    row = rt.make_dataset(MATH, 1, 11, difficulty=0)[0]
    gold = _oracle(MATH, 11, difficulty=0)
    completions = [
        gold,  # standard (plain text) completion
        [{"role": "assistant", "content": gold}],  # conversational completion
        "\\boxed{123456789}",  # well formed, wrong
        "no answer here",  # no boxed answer
    ]
    kwargs = {"seed": [row["seed"]] * 4, "task_id": [row["task_id"]] * 4}
    scores = {f.__name__: f(completions, **kwargs) for f in rt.reward_functions(MATH, difficulty=0)}
    assert scores == {
        "math/reward": [1.0, 1.0, 0.0, 0.0],
        "math/answer": [1.0, 1.0, 0.0, 0.0],
        "math/format": [1.0, 1.0, 1.0, 0.0],
    }


def test_task_id_alone_rebuilds_the_task() -> None:
    row = rt.make_dataset(MATH, 1, 3, difficulty=2)[0]
    total = rt.reward_functions(MATH, difficulty=2)[0]
    assert total([_oracle(MATH, 3, difficulty=2)], task_id=[row["task_id"]]) == [1.0]


def test_code_oracle_passes_every_test() -> None:
    row = rt.make_dataset("rlvr/Code-v0", 1, 5, difficulty=0)[0]
    funcs = rt.reward_functions("rlvr/Code-v0", difficulty=0)
    good, bad = _oracle("rlvr/Code-v0", 5, difficulty=0, max_turns=1), "def nothing(): pass"
    scores = [f([good, bad], seed=[row["seed"]] * 2) for f in funcs]
    assert scores == [[1.0, 0.0], [1.0, 0.0]]


def test_unscorable_reply_gets_none_never_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> MathVerdict:
        return MathVerdict(status="error", answer=None, candidates=(), detail="verifier crashed")

    monkeypatch.setattr("rlvr.envs.math.env.check_math_reply", broken)
    funcs = rt.reward_functions(MATH, difficulty=0)
    assert [f(["\\boxed{1}"], seed=[0]) for f in funcs] == [[None]] * 3


def test_missing_component_is_none() -> None:
    row = rt.make_dataset("rlvr/RubricQA-v0", 1, 0, difficulty=0)[0]
    funcs = rt.reward_functions("rlvr/RubricQA-v0", components=["no such criterion"], difficulty=0)
    total, missing = (f(["Some answer."], seed=[row["seed"]]) for f in funcs)
    assert total[0] is not None and 0.0 <= total[0] <= 1.0
    assert missing == [None]


def test_components_are_scored_once_per_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    played: list[str] = []
    play = rt._Scorer._play

    def counting(self: rt._Scorer, text: str, seed: Any, task_id: Any) -> Any:
        played.append(text)
        return play(self, text, seed, task_id)

    monkeypatch.setattr(rt._Scorer, "_play", counting)
    for func in rt.reward_functions(MATH, difficulty=0):
        func(["\\boxed{1}", "\\boxed{2}"], seed=[0, 1])
    assert played == ["\\boxed{1}", "\\boxed{2}"]


# ---------------------------------------------------------------- datasets


def test_dataset_is_deterministic_from_its_seed() -> None:
    first = rt.make_dataset(MATH, 4, 7, difficulty=(0, 2)).to_list()
    again = rt.make_dataset(MATH, 4, 7, difficulty=(0, 2)).to_list()
    other = rt.make_dataset(MATH, 4, 8, difficulty=(0, 2)).to_list()
    assert first == again and first != other
    assert [row["seed"] for row in first] == [7, 8, 9, 10]
    env = gym.make(MATH, difficulty=(0, 2))
    observation, info = env.reset(seed=9)
    assert first[2]["prompt"] == [
        {"role": "system", "content": info["system_prompt"]},
        {"role": "user", "content": observation},
    ]
    assert first[2]["task_id"] == info["task_id"]
    multi = rt.make_dataset(MATH, 1, 7, multi_turn=True, difficulty=(0, 2))[0]
    assert multi["prompt"][1]["content"] == "" and multi["task_id"] == first[0]["task_id"]


# ---------------------------------------------------------------- errors


def test_clear_errors_for_unknown_ids_and_unsupported_combinations() -> None:
    with pytest.raises(ValueError, match="unknown env id 'rlvr/Nope-v0'"):
        rt.reward_functions("rlvr/Nope-v0")
    with pytest.raises(ValueError, match="unknown env id"):
        rt.environment_factory("Nope-v0")
    with pytest.raises(ValueError, match="unknown env id"):
        rt.make_dataset("Nope-v0", 2)
    with pytest.raises(ValueError, match="no single-turn form; use environment_factory"):
        rt.reward_functions("rlvr/Ecom-v0")
    with pytest.raises(ValueError, match="needs mode='context', got 'search'"):
        rt.reward_functions("rlvr/MultiHop-v0", mode="search")
    with pytest.raises(ValueError, match="needs max_turns=1, got 3"):
        rt.make_dataset(MATH, 2, max_turns=3)
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        rt.make_dataset(MATH, 0)
    total = rt.reward_functions(MATH, difficulty=0)[0]
    with pytest.raises(ValueError, match="needs a 'seed' or 'task_id' column"):
        total(["\\boxed{1}"])
    with pytest.raises(ValueError, match="the environment's get_reward"):
        total(["\\boxed{1}"], seed=[0], environments=[object()])
    row = rt.make_dataset(MATH, 1, 0, difficulty=0)[0]
    hard = rt.reward_functions(MATH, difficulty=5)[0]
    with pytest.raises(ValueError, match="same env kwargs"):
        hard(["\\boxed{1}"], seed=[row["seed"]], task_id=[row["task_id"]])


# ---------------------------------------------------------------- multi-turn environment classes


def test_math_with_retries_maps_to_an_answer_tool() -> None:
    env_class = rt.environment_factory(MATH, difficulty=0, max_turns=2)
    assert env_class.__name__ == "MathV0Environment"
    assert rt.environment_factory("rlvr/MultiHop-v0").__name__ == "MultiHopV0Environment"
    env = env_class()
    with pytest.raises(RuntimeError, match="before reset"):
        env.get_reward()
    row = rt.make_dataset(MATH, 1, 4, multi_turn=True, difficulty=0, max_turns=2)[0]
    observation = env.reset(**row)
    assert observation == gym.make(MATH, difficulty=0).reset(seed=4)[0]
    assert env.task_id == row["task_id"] and env.get_reward() == 0.0  # undecided
    assert "Try again (1 attempt left)" in env.answer(text="\\boxed{123456789}")
    assert env.answer(text=_oracle(MATH, 4, difficulty=0)) == "Correct."
    assert env.done and env.get_reward() == 1.0
    assert env.outcome["reward_components"] == {"answer": 1.0, "format": 1.0}
    assert env.answer(text="again") == rt.EPISODE_OVER
    env.reset(seed=4)
    assert env.get_reward() == 0.0 and not env.done


def test_answer_tool_schema_for_trl() -> None:
    from transformers.utils import get_json_schema

    schema = get_json_schema(rt.environment_factory(MATH).answer)["function"]
    assert schema["name"] == "answer"
    assert schema["parameters"]["required"] == ["text"]
    assert "\\boxed{...}" in schema["parameters"]["properties"]["text"]["description"]


def test_unscorable_attempt_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> MathVerdict:
        return MathVerdict(status="error", answer=None, candidates=(), detail="verifier crashed")

    monkeypatch.setattr("rlvr.envs.math.env.check_math_reply", broken)
    env = rt.environment_factory(MATH, difficulty=0)()
    env.reset(seed=0)
    assert "could not be scored" in env.answer(text="\\boxed{1}")
    assert env.get_reward() is None


def test_ecom_tools_become_methods_and_replay_the_env() -> None:
    from transformers.utils import get_json_schema

    env_class = rt.environment_factory("rlvr/Ecom-v0", difficulty=1)
    _, info = gym.make("rlvr/Ecom-v0", difficulty=1).reset(seed=0)
    public = {n for n in vars(env_class) if not n.startswith("_")} - {"env_id", "env_kwargs"}
    assert public == {tool["function"]["name"] for tool in info["tools"]}
    for tool in info["tools"]:
        ours = get_json_schema(getattr(env_class, tool["function"]["name"]))["function"]
        theirs = tool["function"]["parameters"]
        assert set(ours["parameters"]["properties"]) == set(theirs["properties"])
        assert set(ours["parameters"].get("required", [])) == set(theirs["required"])
    env, reference = env_class(), gym.make("rlvr/Ecom-v0", difficulty=1)
    env.reset(seed=1)
    reference.reset(seed=1)
    while not env.done:
        solver = reference.unwrapped
        assert isinstance(solver, TextEnv)
        action = solver.oracle_action()
        assert action is not None
        call = parse_tool_call(action)
        assert isinstance(call, ToolCall)
        ours_obs = getattr(env, call.name)(**call.arguments)
        theirs_obs, reward, terminated, _, _ = reference.step(action)
        assert ours_obs == theirs_obs
    assert terminated and env.get_reward() == reward == 1.0


def test_reset_needs_a_seed_or_task_id() -> None:
    env = rt.environment_factory(MATH)()
    with pytest.raises(ValueError, match="needs a 'seed' or 'task_id'"):
        env.reset(prompt=[{"role": "user", "content": ""}])


class _StepRewards:
    """Stands in for an env whose steps pay 0.5 (not terminal), then 1.0 (terminal)."""

    def __init__(self) -> None:
        self.steps = 0

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        self.steps += 1
        if self.steps == 1:
            return "go on", 0.5, False, False, {}
        return "done", 1.0, True, False, {"success": True, "reward_components": {}}


def test_get_reward_is_the_terminal_reward_not_a_sum(monkeypatch: pytest.MonkeyPatch) -> None:
    env = rt.environment_factory(MATH, difficulty=0, max_turns=2)()
    env.reset(seed=0)
    monkeypatch.setattr(env, "_env", _StepRewards())
    env.answer(text="first")
    assert not env.done and env.get_reward() == 0.0  # undecided: as a truncated episode pays
    env.answer(text="second")
    assert env.done and env.get_reward() == 1.0  # a sum of the steps would be 1.5


def _recording_make(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Patch ``rt._make`` so each env it builds appends its env id to the list when closed."""
    closed: list[str] = []
    real = rt._make

    def make(env_id: str, env_kwargs: Any) -> Any:
        env = real(env_id, env_kwargs)
        close = env.close

        def recording_close() -> None:
            closed.append(env_id)
            close()

        monkeypatch.setattr(env, "close", recording_close)
        return env

    monkeypatch.setattr(rt, "_make", make)
    return closed


def test_envs_are_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = _recording_make(monkeypatch)
    rt.make_dataset(MATH, 2, difficulty=0)
    assert closed == [MATH]  # the dataset's env, as soon as the rows are built
    env_class = rt.environment_factory(MATH, difficulty=0)
    assert closed == [MATH, MATH]  # the probe that read the tools
    env = env_class()
    env.reset(seed=0)
    del env
    assert closed == [MATH] * 3  # a rollout's env, with its instance
    funcs = rt.reward_functions(MATH, difficulty=0)
    assert funcs[0](["\\boxed{1}"], seed=[0]) in ([0.0], [1.0])
    assert len(closed) == 3
    del funcs
    assert closed == [MATH] * 4  # the scorer's env, with the last reward function


# ------------------------------------------------------- GRPOTrainer runs (CPU, tiny model)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rlvr.agents.tiny import ensure_tiny_model

    return ensure_tiny_model(tmp_path_factory.mktemp("tiny"))


def _config(tmp_path: Path, **overrides: Any) -> Any:
    from trl import GRPOConfig

    base: dict[str, Any] = dict(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=12,
        max_steps=2,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        fp16=False,
        disable_tqdm=True,
        seed=0,
    )
    return GRPOConfig(**{**base, **overrides})


def test_grpo_trains_on_math_with_our_reward_functions(tiny_model: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer

    funcs = rt.reward_functions(MATH, difficulty=0)
    seen: list[tuple[str, list[str], list[Any], list[float | None]]] = []

    def spying(func: rt.RewardFunc) -> rt.RewardFunc:
        def reward(completions: list[Any], **columns: Any) -> list[float | None]:
            out = func(completions, **columns)
            texts = [rt.completion_text(c) for c in completions]
            seen.append((func.__name__, texts, list(columns["seed"]), out))
            return out

        reward.__name__ = func.__name__
        return reward

    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model),
        processing_class=AutoTokenizer.from_pretrained(tiny_model),
        reward_funcs=[spying(f) for f in funcs],
        args=_config(tmp_path, reward_weights=rt.reward_weights(funcs)),
        train_dataset=rt.make_dataset(MATH, 8, 0, difficulty=0),
    )
    trainer.train()
    steps = [h for h in trainer.state.log_history if "rewards/math/reward/mean" in h]
    assert len(steps) == 2
    assert {"rewards/math/answer/mean", "rewards/math/format/mean"} <= set(steps[0])
    assert [name for name, *_ in seen] == [f.__name__ for f in funcs] * 2
    # What TRL logged is what a fresh scorer of ours gives the same completions.
    fresh = rt.reward_functions(MATH, difficulty=0)[0]
    for step, (_, texts, seeds, out) in zip(steps, seen[::3], strict=True):
        assert len(texts) == 4 and fresh(texts, seed=seeds) == out
        scored = [r for r in out if r is not None]
        assert len(scored) == 4
        assert step["rewards/math/reward/mean"] == pytest.approx(sum(scored) / 4)


def test_grpo_multi_turn_math_with_retries(tiny_model: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer
    from trl.chat_template_utils import qwen2_5_chat_template

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.chat_template = qwen2_5_chat_template  # ChatML that renders tools and tool calls
    kwargs: dict[str, Any] = {"difficulty": 0, "max_turns": 2}
    dataset = rt.make_dataset(MATH, 4, 0, multi_turn=True, **kwargs)
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model),
        processing_class=tokenizer,
        environment_factory=rt.environment_factory(MATH, **kwargs),
        args=_config(tmp_path),
        train_dataset=dataset,
    )
    trainer.train()
    steps = [h for h in trainer.state.log_history if "rewards/MathV0Environment/mean" in h]
    assert len(steps) == 2
    envs = trainer.environments
    assert envs is not None and len(envs) == 4
    # The G = 2 rollouts of a group played the same task, one of the dataset's.
    ids = [env.task_id for env in envs]
    assert ids[0] == ids[1] and ids[2] == ids[3] and set(ids) <= set(dataset["task_id"])
    last = sum(env.get_reward() for env in envs) / len(envs)
    assert steps[-1]["rewards/MathV0Environment/mean"] == pytest.approx(last)
