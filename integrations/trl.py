"""rlvr envs inside TRL's ``GRPOTrainer`` (trl >= 1.16), scored by the envs' own verifiers.

Two ways in (docs/trl.md has the full guide):

* **Single-turn**, :func:`make_dataset` + :func:`reward_functions`. Each dataset row holds a
  conversational ``prompt`` (the env's system prompt and first observation) and the ``seed``
  and ``task_id`` of its episode. A reward function rebuilds that episode with
  ``env.reset(seed=seed)``, steps the completion as the agent's one reply and reads the
  terminal ``reward`` and ``reward_components``: one function per component plus the total.
  A reply the verifier cannot score (it raised) gets ``None``, never 0.
* **Multi-turn**, :func:`environment_factory`: a class TRL instantiates once per rollout.
  ``reset(**row)`` starts the row's episode and returns its first observation; each tool of
  the env (``info["tools"]``) becomes a method TRL exposes to the model, and the env's reply is
  the tool result; ``get_reward()`` returns the episode's terminal reward. An env without tools
  (Math, Code, RubricQA, MultiHop in context mode) gets one tool, ``answer(text)``, that
  submits an attempt and returns the verdict or the retry feedback.

Nothing here imports torch; ``datasets`` is imported by :func:`make_dataset` only.
"""

from __future__ import annotations

import inspect
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import gymnasium as gym

from rlvr.envs import ENV_SPECS, register_envs
from rlvr.envs.tool_calls import format_tool_call
from rlvr.rewards.math import VerifierError
from rlvr.rewards.rubric_guards import UnscorableError
from rlvr.rewards.sandbox import SandboxError

if TYPE_CHECKING:
    from datasets import Dataset

RewardFunc = Callable[..., list[float | None]]
"""A TRL reward function: ``(completions, **columns) -> one reward (or None) per completion``."""

SCORER_ERRORS: tuple[type[Exception], ...] = (VerifierError, SandboxError, UnscorableError)
"""What a verifier raises when it cannot score a reply: the sample gets ``None``, not 0."""

EPISODE_OVER = "The episode is over; this call was not read. Reply with your final message."
"""The result of a tool call made after the episode ended."""

_RESERVED = frozenset({"reset", "get_reward", "done", "task_id", "outcome", "env_id", "env_kwargs"})


@dataclass(frozen=True)
class EpisodeScore:
    """The verdict of one single-turn episode: its terminal reward and components."""

    reward: float
    components: Mapping[str, float]
    success: bool


Extractor = Callable[[Mapping[str, float]], float | None]


def _component(key: str) -> Extractor:
    def read(components: Mapping[str, float]) -> float | None:
        value = components.get(key)
        return None if value is None else float(value)

    return read


def _tests_passed(components: Mapping[str, float]) -> float | None:
    tests = [value for key, value in components.items() if key.startswith("test_")]
    return sum(tests) / len(tests) if tests else None


@dataclass(frozen=True)
class _SingleTurn:
    """How an env is scored single-turn: the name prefix, the components, the kwargs it needs."""

    prefix: str
    components: Mapping[str, Extractor]
    needs: Mapping[str, Any]
    answer_help: str


_SINGLE_TURN: dict[str, _SingleTurn] = {
    "rlvr/Math-v0": _SingleTurn(
        "math",
        {"answer": _component("answer"), "format": _component("format")},
        {"max_turns": 1},
        "Your reply; its final answer goes in \\boxed{...}, exactly once.",
    ),
    "rlvr/Code-v0": _SingleTurn(
        "code",
        {"tests_passed": _tests_passed},  # per-test components vary by task: their mean
        {"max_turns": 1},
        "Your reply; the program is its last ```python fenced block (the whole reply if none).",
    ),
    "rlvr/RubricQA-v0": _SingleTurn(
        "rubricqa",
        {
            gate: _component(gate)
            for gate in ("integrity/prose", "integrity/no_echo", "integrity/on_topic")
        },
        {"max_turns": 1},
        "Your answer text (for JSON tasks, a JSON object).",
    ),
    "rlvr/MultiHop-v0": _SingleTurn(
        "multihop",
        {"outcome": _component("outcome"), "rubric": _component("rubric")},
        {"mode": "context"},
        "Your reply, ending with one line 'Answer: <answer>'.",
    ),
}
"""The envs with a single-turn form. Ecom-v0 (a tool dialogue) has none."""


def _make(env_id: str, env_kwargs: Mapping[str, Any]) -> gym.Env[str, str]:
    register_envs()
    if env_id not in ENV_SPECS:
        known = ", ".join(ENV_SPECS)
        raise ValueError(f"unknown env id {env_id!r}; the rlvr envs are: {known}")
    return gym.make(env_id, **env_kwargs)


def _single_turn(env_id: str, env_kwargs: Mapping[str, Any]) -> tuple[_SingleTurn, dict[str, Any]]:
    """The single-turn spec of ``env_id`` and the kwargs to build it with."""
    if env_id not in ENV_SPECS:
        _make(env_id, {})  # raises the unknown-id error
    spec = _SINGLE_TURN.get(env_id)
    if spec is None:
        raise ValueError(
            f"{env_id} is a multi-turn tool dialogue with no single-turn form; "
            "use environment_factory() instead"
        )
    for key, needed in spec.needs.items():
        if key in env_kwargs and env_kwargs[key] != needed:
            raise ValueError(
                f"single-turn {env_id} needs {key}={needed!r}, got {env_kwargs[key]!r}; "
                "use environment_factory() for the multi-turn form"
            )
    return spec, {**env_kwargs, **spec.needs}


def _reset_episode(
    env: gym.Env[str, str], seed: Any = None, task_id: Any = None
) -> tuple[str, dict[str, Any]]:
    """Replay a row's episode: ``reset(seed=seed)`` (checked against ``task_id``), else the task."""
    if seed is not None:
        observation, info = env.reset(seed=int(seed))
        if task_id is not None and info["task_id"] != task_id:
            raise ValueError(
                f"seed {seed} gives task {info['task_id']!r}, but the row says {task_id!r}: "
                "build the dataset and the reward functions with the same env kwargs"
            )
        return observation, info
    if task_id is not None:
        return env.reset(options={"task_id": str(task_id)})
    raise ValueError(
        "a row needs a 'seed' or 'task_id' column to rebuild its episode; "
        "build the dataset with rlvr.integrations.trl.make_dataset()"
    )


def completion_text(completion: Any) -> str:
    """The reply text of a TRL completion: a string, or the last assistant message's content."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        replies = [m for m in completion if isinstance(m, Mapping) and m.get("role") == "assistant"]
        if not replies:
            raise ValueError("the conversational completion holds no assistant message")
        content = replies[-1].get("content") or ""
        if isinstance(content, list):  # content blocks: keep the text ones
            return "".join(b.get("text", "") for b in content if isinstance(b, Mapping))
        return str(content)
    raise TypeError(f"a completion must be a str or a list of messages, got {type(completion)}")


class _Scorer:
    """Scores (episode, reply) pairs once; every reward function of one set shares it."""

    def __init__(self, env_id: str, env_kwargs: Mapping[str, Any], cache_size: int = 4096):
        self._env = _make(env_id, env_kwargs)
        # The scorer lives as long as its reward functions; close the env when it goes.
        self._finalizer = weakref.finalize(self, self._env.close)
        self._cache: OrderedDict[tuple[Any, Any, str], EpisodeScore | None] = OrderedDict()
        self._cache_size = cache_size
        self.episodes = 0
        """How many episodes were actually played (cache misses)."""

    def score(self, text: str, seed: Any, task_id: Any) -> EpisodeScore | None:
        key = (seed, task_id, text)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        result = self._play(text, seed, task_id)
        self._cache[key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    def _play(self, text: str, seed: Any, task_id: Any) -> EpisodeScore | None:
        _reset_episode(self._env, seed, task_id)
        self.episodes += 1
        try:
            _, reward, terminated, _, info = self._env.step(text)
        except SCORER_ERRORS:
            return None
        if not terminated:
            raise RuntimeError("the env did not end its episode after one reply")
        return EpisodeScore(float(reward), dict(info["reward_components"]), bool(info["success"]))


def _reward_function(
    scorer: _Scorer, name: str, read: Callable[[EpisodeScore], float | None]
) -> RewardFunc:
    def reward(
        completions: list[Any],
        seed: list[Any] | None = None,
        task_id: list[Any] | None = None,
        **columns: Any,
    ) -> list[float | None]:
        if columns.get("environments") is not None:
            raise ValueError(
                f"{name} scores one reply per row; with environment_factory the reward is "
                "the environment's get_reward()"
            )
        seeds = seed if seed is not None else [None] * len(completions)
        task_ids = task_id if task_id is not None else [None] * len(completions)
        scores = (
            scorer.score(completion_text(c), s, t)
            for c, s, t in zip(completions, seeds, task_ids, strict=True)
        )
        return [None if score is None else read(score) for score in scores]

    reward.__name__ = reward.__qualname__ = name
    reward.__doc__ = f"TRL reward function {name!r}: None where the verifier could not score."
    return reward


def reward_functions(
    env_id: str, *, components: Sequence[str] | None = None, **env_kwargs: Any
) -> list[RewardFunc]:
    """TRL reward functions that score completions with ``env_id``'s verifier, single-turn.

    The first function, ``"<env>/reward"`` (e.g. ``"math/reward"``), is the env's reward; the
    others, ``"<env>/<component>"``, read one entry of ``reward_components`` each (Math:
    ``answer``, ``format``; Code: ``tests_passed``, the share of tests passed; RubricQA: the
    integrity gates; MultiHop: ``outcome``, ``rubric``). ``components`` replaces that list by
    the named entries (RubricQA criteria such as ``"facts"``); a task without the entry gets
    ``None``. Weigh the total 1 and the components 0 (:func:`reward_weights`) to train on the
    env's reward and log the components. Rows must carry ``seed`` or ``task_id``
    (:func:`make_dataset`). ``env_kwargs`` go to ``gym.make`` and must match the dataset's.

    Raises:
        ValueError: unknown env id, an env without a single-turn form (Ecom-v0,
            MultiHop-v0 with ``mode="search"``) or ``max_turns`` other than 1.
    """
    spec, kwargs = _single_turn(env_id, env_kwargs)
    scorer = _Scorer(env_id, kwargs)
    extractors = (
        spec.components if components is None else {name: _component(name) for name in components}
    )
    funcs = [_reward_function(scorer, f"{spec.prefix}/reward", _total)]
    for name, extract in extractors.items():
        funcs.append(_reward_function(scorer, f"{spec.prefix}/{name}", _reading(extract)))
    return funcs


def _total(score: EpisodeScore) -> float:
    return score.reward


def _reading(extract: Extractor) -> Callable[[EpisodeScore], float | None]:
    def read(score: EpisodeScore) -> float | None:
        return extract(score.components)

    return read


def reward_weights(funcs: Sequence[Callable[..., Any]]) -> list[float]:
    """``GRPOConfig.reward_weights`` for :func:`reward_functions`: 1 for the total, 0 (logged
    only) for the components."""
    weights = [1.0 if f.__name__.endswith("/reward") else 0.0 for f in funcs]
    if sum(weights) != 1.0:
        raise ValueError("expected exactly one '<env>/reward' function among the reward functions")
    return weights


def make_dataset(
    env_id: str, n: int, seed: int = 0, *, multi_turn: bool = False, **env_kwargs: Any
) -> Dataset:
    """A ``datasets.Dataset`` of ``n`` episodes of ``env_id`` for ``GRPOTrainer``.

    Row ``i`` is the episode of ``reset(seed=seed + i)``: columns ``prompt`` (conversational:
    the system prompt and the first observation), ``seed``, ``task_id`` and ``difficulty``.
    The same arguments give the same rows in any process. With ``multi_turn=True`` the user
    message is left empty: the environment's ``reset`` returns the observation and TRL
    appends it there (use it with :func:`environment_factory`).
    """
    from datasets import Dataset

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    kwargs = dict(env_kwargs) if multi_turn else _single_turn(env_id, env_kwargs)[1]
    env = _make(env_id, kwargs)
    rows: dict[str, list[Any]] = {"prompt": [], "seed": [], "task_id": [], "difficulty": []}
    try:
        for episode_seed in range(seed, seed + n):
            observation, info = env.reset(seed=episode_seed)
            rows["prompt"].append(
                [
                    {"role": "system", "content": info["system_prompt"]},
                    {"role": "user", "content": "" if multi_turn else observation},
                ]
            )
            rows["seed"].append(episode_seed)
            rows["task_id"].append(info["task_id"])
            rows["difficulty"].append(info["difficulty"])
    finally:
        env.close()
    return Dataset.from_dict(rows)


class RlvrEnvironment:
    """Base of the classes :func:`environment_factory` makes: one instance per TRL rollout.

    Public functions of the class are what TRL turns into tools, so everything else here is a
    property or private: ``reset`` and ``get_reward`` are the two hooks TRL reserves.
    """

    env_id: ClassVar[str] = ""
    env_kwargs: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    def __init__(self) -> None:
        if not self.env_id:
            raise TypeError("make an environment class with environment_factory(env_id)")
        self._env = _make(self.env_id, dict(self.env_kwargs))
        # TRL keeps one instance per rollout and has no close hook: close the env with it.
        self._finalizer = weakref.finalize(self, self._env.close)
        self._clear(started=False)
        self._task_id: str | None = None

    def _clear(self, *, started: bool) -> None:
        self._started = started
        self._done = False
        self._unscorable = False
        self._reward = 0.0
        self._outcome: dict[str, Any] = {}

    def reset(self, seed: int | None = None, task_id: str | None = None, **row: Any) -> str:
        """Start the episode of a dataset row (its ``seed``, else its ``task_id``; other
        columns are ignored) and return its first observation."""
        observation, info = _reset_episode(self._env, seed, task_id)
        self._clear(started=True)
        self._task_id = str(info["task_id"])
        return observation

    def get_reward(self) -> float | None:
        """The episode's reward: the reward of the step that ended the episode (the env's
        terminal reward, in [0, 1] by the env contract; earlier steps' rewards are not added),
        0.0 if the rollout stopped before the env ended the episode (as a truncated episode
        pays), ``None`` if the verifier could not score a reply."""
        if not self._started:
            raise RuntimeError("get_reward() was called before reset()")
        return None if self._unscorable else self._reward

    @property
    def done(self) -> bool:
        """Whether the env ended the episode (terminated or truncated)."""
        return self._done

    @property
    def task_id(self) -> str | None:
        """The id of the episode's task (``None`` before ``reset``)."""
        return self._task_id

    @property
    def outcome(self) -> Mapping[str, Any]:
        """The terminal ``info`` (``success``, ``reward_components``, ``feedback``...); empty
        until the episode ends."""
        return MappingProxyType(self._outcome)

    def _step(self, action: str) -> str:
        if not self._started:
            raise RuntimeError("call reset() before calling a tool")
        if self._done:
            return EPISODE_OVER
        try:
            observation, reward, terminated, truncated, info = self._env.step(action)
        except SCORER_ERRORS as error:
            self._done = self._unscorable = True
            return f"This reply could not be scored ({error}); the episode is over."
        if terminated or truncated:
            self._done = True
            self._reward = float(reward)  # the terminal reward, not a sum over steps
            self._outcome = dict(info)
        if truncated:
            observation += "\n(The turn budget is used up; the episode is over.)"
        return observation


_JSON_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
}


def _docstring(description: str, args: Mapping[str, str], returns: str) -> str:
    """A Google-style docstring, which ``transformers.utils.get_json_schema`` parses."""
    lines = [description.strip(), ""]
    if args:
        lines += ["Args:", *(f"    {key}: {text.strip()}" for key, text in args.items()), ""]
    return "\n".join([*lines, "Returns:", f"    {returns}"])


def _tool_method(tool: Mapping[str, Any]) -> Callable[..., str]:
    """A method with the tool's name, typed keyword parameters and docstring; calling it
    sends the call to the env as one action and returns the env's reply."""
    spec = tool["function"]
    name = spec["name"]
    schema = spec.get("parameters") or {}
    properties: Mapping[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))

    def method(self, **arguments: Any) -> str:  # self unannotated: get_json_schema skips it
        given = {key: value for key, value in arguments.items() if value is not None}
        return self._step(format_tool_call(name, given))

    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    for key, prop in properties.items():
        kind = _JSON_TYPES.get(prop.get("type", "string"), str)
        annotation: Any = kind if key in required else kind | None
        default = inspect.Parameter.empty if key in required else None
        params.append(
            inspect.Parameter(
                key, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
            )
        )
        annotations[key] = annotation
    annotations["return"] = str
    method.__dict__["__signature__"] = inspect.Signature(params, return_annotation=str)
    method.__annotations__ = annotations
    method.__name__ = method.__qualname__ = name
    method.__doc__ = _docstring(
        spec.get("description") or name,
        {key: prop.get("description") or key for key, prop in properties.items()},
        "The environment's reply (a tool result, or the customer's message).",
    )
    return method


def _answer_method(env_id: str) -> Callable[..., str]:
    """The ``answer(text)`` tool of an env without tools: one agent reply per call."""

    def answer(self, text: str) -> str:  # self unannotated: get_json_schema skips it
        return self._step(text)

    help_text = _SINGLE_TURN[env_id].answer_help
    answer.__doc__ = _docstring(
        "Submit one attempt at the task. A wrong attempt with attempts left gets feedback "
        "and may be followed by another call; the episode ends at a correct attempt or the "
        "last one.",
        {"text": help_text},
        "The verdict, or the feedback on the attempt and how many attempts are left.",
    )
    return answer


def _class_name(env_id: str) -> str:
    """``"rlvr/Math-v0"`` -> ``"MathV0Environment"`` (TRL logs the reward under it)."""
    base, _, version = env_id.split("/")[-1].rpartition("-v")
    name = "".join(ch for ch in base if ch.isalnum())
    return name[:1].upper() + name[1:] + f"V{version}Environment"


def environment_factory(env_id: str, **env_kwargs: Any) -> type[RlvrEnvironment]:
    """A class for ``GRPOTrainer(environment_factory=...)`` playing ``env_id`` multi-turn.

    Pass ``train_dataset=make_dataset(env_id, n, seed, multi_turn=True, **env_kwargs)``: TRL
    calls ``reset(**row)`` on each rollout's instance, which starts the row's episode, so the
    ``G`` rollouts of a group play the same task. The env's tools become methods (same names,
    typed parameters, Google docstrings for TRL's tool schemas); an env without tools gets
    ``answer(text)`` (see :func:`_answer_method`). ``get_reward`` is the env's reward, logged by
    TRL under the class name (e.g. ``rewards/MathV0Environment/mean``).

    Raises:
        ValueError: unknown env id, or an env tool whose name TRL reserves.
    """
    probe = _make(env_id, env_kwargs)
    try:
        _, info = probe.reset(seed=0)
    finally:
        probe.close()
    namespace: dict[str, Any] = {
        "env_id": env_id,
        "env_kwargs": MappingProxyType(dict(env_kwargs)),
        "__module__": __name__,
        "__doc__": f"{env_id} as a TRL environment: one instance per rollout.",
    }
    tools = info.get("tools") or []
    for tool in tools:
        name = tool["function"]["name"]
        if name in _RESERVED or name.startswith("_"):
            raise ValueError(
                f"{env_id} has a tool named {name!r}, which TRL's environments reserve"
            )
        namespace[name] = _tool_method(tool)
    if not tools:
        _single_turn(env_id, {})  # an env without tools must have an answer form
        namespace["answer"] = _answer_method(env_id)
    return type(_class_name(env_id), (RlvrEnvironment,), namespace)
