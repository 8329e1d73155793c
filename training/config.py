"""Scenario files: a whole training run described in YAML, validated before any compute starts.

A scenario is a YAML mapping whose fields are those of :class:`TrainConfig` (nested sections
``model``, ``envs``, ``rollout``, ``algorithm``, ``sft``, ``distill``, ``eval``, ``run``).
Every field can be overridden on the command line as ``key.subkey=value``
(``envs.0.weight=2``); values are parsed as YAML, so ``algorithm.beta=0.04`` is a float and
``sft.data=null`` is ``None``.

Validation is strict (pydantic models with ``extra="forbid"`` and strict types): an unknown key,
a technique name no registry knows, a wrong type or an impossible setting is one
:class:`ConfigError` naming the field, e.g. ``rollout.group_size: must be >= 2 (GRPO needs a
group to compare), got 1``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rlvr.training.advantages import ADVANTAGES
from rlvr.training.horizons import HORIZONS, HorizonConfig
from rlvr.training.losses import AGGREGATIONS, KL_ESTIMATORS, POLICY_LOSSES
from rlvr.training.overrides import ConfigError, apply_overrides, parse_yaml
from rlvr.training.sampling import GROUP_FILTERS


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TinyModelConfig(_Section):
    """Sizes of the built-in tiny Llama (used when ``model.name`` is ``tiny``)."""

    hidden_size: int = Field(64, ge=8)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(176, ge=8)
    seed: int = 0
    vocab_size: int = Field(512, ge=261)
    """Upper bound on the BPE vocabulary (256 bytes, 5 specials, then learned merges)."""
    tokenizer_corpus: Literal["builtin", "envs"] = "builtin"
    """``builtin``: merges learned from a few lines of math and chat text only. ``envs``: also
    from ``tokenizer_episodes`` scripted-solver transcripts of each of the run's envs (the SFT
    seeds, never the held-out ones), so names and values the envs ask to copy are a few tokens
    each, as in a pretrained model's vocabulary."""
    tokenizer_episodes: int = Field(300, ge=1)


class LoraConfig(_Section):
    """LoRA adapters through ``peft`` (the reference policy is the base with adapters off)."""

    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | str = "all-linear"


class ModelConfig(_Section):
    """The policy: ``tiny`` (built locally, no download), a hub id, or a local directory."""

    name: str = "tiny"
    tiny: TinyModelConfig = TinyModelConfig()
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device: str | None = None
    """``None``: the local CUDA device when there is one (its rank's under torchrun), else CPU."""
    chat_template: str | None = None
    lora: LoraConfig | None = None


class CurriculumConfig(_Section):
    """The RLVE adaptive window (see :class:`rlvr.envs.Curriculum`)."""

    start: int = Field(0, ge=0)
    episodes_per_check: int = Field(32, ge=1)
    accuracy_threshold: float = Field(0.9, gt=0.0, le=1.0)
    window: int = Field(5, ge=1)


class EnvConfig(_Section):
    """One env of the training mixture."""

    id: str
    weight: float = Field(1.0, gt=0.0)
    difficulty: int | None = Field(None, ge=0)
    """Pin every episode to this level; ``None`` with no curriculum uses the env's own range."""
    curriculum: CurriculumConfig | None = None
    kwargs: dict[str, Any] = {}
    """Keyword arguments for ``gym.make`` (``max_turns``, ``dataset``, ...)."""
    solver: dict[str, Any] = {}
    """Keyword arguments for the env's scripted solver, which writes the warm-up's transcripts
    (``{worked: 0.3}`` for Math-v0: that share of arithmetic answers shows its steps)."""

    @field_validator("id")
    @classmethod
    def _registered(cls, env_id: str) -> str:
        import importlib

        import gymnasium as gym

        import rlvr

        gym.register_envs(rlvr)
        module, sep, _ = env_id.partition(":")
        if sep:
            try:
                importlib.import_module(module)
            except ImportError as error:
                raise ValueError(f"cannot import {module!r} for env {env_id!r}: {error}") from None
        try:
            gym.spec(env_id.split(":")[-1] if sep else env_id)
        except gym.error.Error:
            raise ValueError(f"unknown env id {env_id!r} (see `rlvr envs`)") from None
        return env_id

    @model_validator(mode="after")
    def _solver_accepts(self) -> EnvConfig:
        if self.solver:
            from rlvr.agents.registry import load_agent

            try:
                load_agent("scripted", env_id=self.id, **self.solver)
            except (TypeError, ValueError) as error:
                raise ValueError(f"solver {self.solver}: {error}") from None
        return self

    @model_validator(mode="after")
    def _one_difficulty_rule(self) -> EnvConfig:
        if self.difficulty is not None and self.curriculum is not None:
            raise ValueError("set difficulty or curriculum, not both")
        return self


class RolloutConfig(_Section):
    """How episodes are collected."""

    group_size: int = Field(8, ge=2)
    prompts_per_step: int = Field(8, ge=1)
    """Groups per optimizer batch (across all processes under torchrun)."""
    max_new_tokens: int = Field(64, ge=1)
    """Token budget of one assistant turn."""
    max_total_tokens: int = Field(1024, ge=8)
    """Budget of a whole episode (prompt, env messages and replies); past it the episode is
    truncated."""
    max_turns: int = Field(16, ge=1)
    """Safety budget of assistant turns per episode (envs have their own limits too)."""
    temperature: float = Field(1.0, gt=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    ignore_eos: bool = False
    """Sample every turn to ``max_new_tokens`` (benchmarks that need equal work per turn)."""
    env_workers: int = Field(8, ge=1)
    """Threads stepping envs in parallel (code execution must not serialize the batch)."""
    group_filter: str = "all"
    """``all``, or ``informative``: DAPO dynamic sampling (drop zero-variance groups, refill)."""
    max_sampling_rounds: int = Field(3, ge=1)
    """Rounds of collection allowed to fill the batch with informative groups."""
    on_env_error: Literal["drop_group", "raise"] = "drop_group"
    """A rollout whose env raised: drop its whole group (counted and logged) or stop the run."""
    backend: Literal["local", "openai"] = "local"
    """``local``: sample with the trained model in process. ``openai``: sample on an
    OpenAI-compatible completions server (vLLM) at ``server_url``."""
    server_url: str | None = None
    """The server root, e.g. ``http://localhost:8000`` (requests go to ``/v1/completions``)."""
    server_model: str | None = None
    """The ``model`` field of the requests; ``None`` uses the server's default model."""
    server_reload_path: str | None = None
    """Endpoint POSTed after each update to reload the pushed weights (``null``: no push)."""
    server_weights_dir: str | None = None
    """Where the policy is saved for the server to reload (a path the server can read)."""

    @field_validator("group_filter")
    @classmethod
    def _known_filter(cls, name: str) -> str:
        GROUP_FILTERS.get(name)
        return name

    @model_validator(mode="after")
    def _server_fields(self) -> RolloutConfig:
        if self.backend == "openai" and not self.server_url:
            raise ValueError("backend openai needs server_url (the inference server's root URL)")
        if self.server_reload_path is not None and self.server_weights_dir is None:
            raise ValueError("server_reload_path needs server_weights_dir (where to save weights)")
        lora_push = (self.server_reload_path or "").rstrip("/").endswith("load_lora_adapter")
        if lora_push and self.server_model is None:
            raise ValueError("a load_lora_adapter push needs server_model (the adapter's name)")
        return self


class TechniqueChoice(_Section):
    """A technique built from a registry with keyword parameters: ``{name: delta, params:
    {lambda_min: 0.8}}``. Both are checked by building it at validation time."""

    name: str = "none"
    params: dict[str, Any] = {}


def _build(registry: Any, choice: TechniqueChoice) -> Any:
    factory = registry.get(choice.name)
    try:
        return factory(**choice.params)
    except TypeError as error:
        raise ValueError(f"bad parameters for {registry.kind} {choice.name!r}: {error}") from None


class RewardSourceConfig(_Section):
    """One reward of ``algorithm.rewards``: a source of ``REWARD_SOURCES``
    (:mod:`rlvr.training.reward_sources`), its weight in the advantage and its parameters."""

    name: str
    """``env``, ``component``, ``transform`` or ``self_certainty``."""
    weight: float = 1.0
    """Weight ``w_k`` handed to the advantage estimator (finite; may be 0 to only log)."""
    params: dict[str, Any] = {}
    """Keyword parameters of the source (``key`` of ``component``; ``transform`` and the
    transform's own of ``transform``)."""

    @field_validator("weight")
    @classmethod
    def _finite(cls, weight: float) -> float:
        if not math.isfinite(weight):
            raise ValueError(f"weight must be finite, got {weight}")
        return weight

    @model_validator(mode="after")
    def _buildable(self) -> RewardSourceConfig:
        from rlvr.training.reward_sources import build_source

        build_source(self.name, self.params)
        return self


class AlgorithmConfig(_Section):
    """The GRPO-family objective; names are looked up in the technique registries."""

    advantage: str = "grpo"
    policy_loss: str = "token"
    aggregation: str = "dapo"
    kl_estimator: str = "k3"
    beta: float = Field(0.0, ge=0.0)
    """KL coefficient; 0 loads no reference model."""
    eps_low: float = Field(0.2, ge=0.0, lt=1.0)
    eps_high: float = Field(0.2, ge=0.0)
    delta: float | None = None
    updates_per_batch: int = Field(1, ge=1)
    """Passes over each batch (``num_iterations``, PPO epochs)."""
    minibatches: int = Field(1, ge=1)
    """Optimizer steps per pass; the batch is split into this many minibatches."""
    lr: float = Field(1e-5, gt=0.0)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    """``sgd`` steps along the gradient itself (momentum ``sgd_momentum``); AdamW moves every
    parameter by about ``lr`` per step whatever its gradient's size."""
    sgd_momentum: float = Field(0.0, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    max_grad_norm: float = Field(1.0, gt=0.0)
    warmup_steps: int = Field(0, ge=0)
    overlong_buffer: int = Field(0, ge=0)
    """DAPO soft overlong punishment over the last ``overlong_buffer`` tokens of the episode
    budget ``rollout.max_total_tokens`` (the length that truncates); 0 turns it off."""
    overlong_factor: float = Field(1.0, ge=0.0)
    token_credit: TechniqueChoice = TechniqueChoice()
    """From ``TOKEN_CREDIT`` (``none``, ``delta``, ``turn``): per-token advantages."""
    regularizer: TechniqueChoice = TechniqueChoice()
    """From ``REGULARIZERS`` (``none``, ``kl_cov``, ``clip_cov``): rewrites the per-token loss."""
    rewards: list[RewardSourceConfig] = Field(
        default_factory=lambda: [RewardSourceConfig.model_construct(name="env", params={})],
        min_length=1,
    )
    """The rewards ``(B, G, K)`` and weights ``(K,)`` the advantage is computed from; the
    default is the env's episode return (with the overlong penalty), weight 1."""

    @field_validator("rewards")
    @classmethod
    def _mixable(cls, rewards: list[RewardSourceConfig]) -> list[RewardSourceConfig]:
        from rlvr.training.reward_sources import RewardMix

        RewardMix(rewards)  # distinct sources, at least one nonzero weight
        return rewards

    @field_validator("advantage", "policy_loss", "aggregation", "kl_estimator")
    @classmethod
    def _registered_name(cls, name: str, info: ValidationInfo) -> str:
        _NAMED_TECHNIQUES[str(info.field_name)].get(name)
        return name

    @field_validator("token_credit", "regularizer")
    @classmethod
    def _buildable(cls, choice: TechniqueChoice, info: ValidationInfo) -> TechniqueChoice:
        from rlvr.training.credit import TOKEN_CREDIT
        from rlvr.training.regularizers import REGULARIZERS

        registry = {"token_credit": TOKEN_CREDIT, "regularizer": REGULARIZERS}[str(info.field_name)]
        _build(registry, choice)
        return choice


_NAMED_TECHNIQUES: dict[str, Any] = {
    "advantage": ADVANTAGES,
    "policy_loss": POLICY_LOSSES,
    "aggregation": AGGREGATIONS,
    "kl_estimator": KL_ESTIMATORS,
}
"""The registry each technique-name field of :class:`AlgorithmConfig` is looked up in."""


class DistillationConfig(_Section):
    """On-policy distillation (OPD, TOPD/POPD horizons) and DistIL; see docs/distillation.md.

    The step's advantages are ``reward_weight * A_env + coef * A_distill`` and its per-token
    loss gets ``+ coef * L_distill``; each objective supplies one of the two terms (the other
    is zero). ``objective: none`` (the default) loads no teacher and changes nothing.
    """

    objective: str = "none"
    """From ``DISTILL_OBJECTIVES``: ``none``, ``opd`` (per-token reverse-KL advantage),
    ``forward_ce`` / ``forward_ce_topk`` (DistIL losses), ``reverse_kl_sampled`` (SDPO-style
    self-distillation baseline)."""
    teacher: str = "self"
    """``self``: the policy itself under stop-gradient; otherwise a local directory or hub id
    loaded like ``model.name`` (frozen, eval mode), which must share the policy's tokenizer."""
    context: Literal["none", "feedback", "reference"] = "none"
    """What the teacher sees besides the student's prompt: nothing, the env's
    ``info["feedback"]``, or the feedback and ``info["reference"]``."""
    coef: float = Field(1.0, gt=0.0)
    """Weight of the distillation term (the OPD advantage or the distillation loss)."""
    reward_weight: float = Field(1.0, ge=0.0)
    """Weight of the env-reward advantage; 0 is pure distillation (no reward used)."""
    topk: int = Field(20, ge=1)
    """``forward_ce_topk``: the teacher's most likely tokens that carry the loss."""
    horizon: TechniqueChoice = TechniqueChoice(name="full")
    """From ``HORIZONS`` (``full``, ``truncated`` = TOPD, ``doubling`` / ``linear`` = POPD),
    with ``HorizonConfig`` parameters: the step's per-turn token budget, a fraction of
    ``rollout.max_new_tokens``."""

    @field_validator("objective")
    @classmethod
    def _known_objective(cls, name: str) -> str:
        from rlvr.training.distill_objectives import DISTILL_OBJECTIVES

        DISTILL_OBJECTIVES.get(name)
        return name

    @field_validator("horizon")
    @classmethod
    def _known_horizon(cls, choice: TechniqueChoice) -> TechniqueChoice:
        HORIZONS.get(choice.name)
        try:
            HorizonConfig(**choice.params)
        except TypeError as error:
            raise ValueError(f"bad parameters for horizon {choice.name!r}: {error}") from None
        return choice

    @model_validator(mode="after")
    def _meaningful(self) -> DistillationConfig:
        if self.objective == "none":
            if self.reward_weight == 0:
                raise ValueError("reward_weight 0 (pure distillation) needs an objective")
            if self.reward_weight != 1:
                raise ValueError("reward_weight weighs rewards against an objective: 1 with none")
            if self.teacher != "self" or self.context != "none":
                raise ValueError("teacher and context are unused with objective none")
        elif self.teacher == "self" and self.context == "none":
            raise ValueError(
                "teacher self with context none is the student itself (a zero signal): give "
                "the teacher feedback or reference context, or a teacher model"
            )
        if self.horizon.name != "full" and self.reward_weight > 0:
            raise ValueError(
                f"horizon {self.horizon.name} cuts replies short, so env rewards would score "
                "cut replies: set reward_weight to 0"
            )
        return self


class SFTConfig(_Section):
    """Supervised warm-up before RL, on scripted-solver transcripts or a JSONL of chats."""

    steps: int = Field(0, ge=0)
    episodes: int = Field(512, ge=1)
    """Scripted-solver episodes per env to learn from (when ``data`` is not given)."""
    data: str | None = None
    """A JSONL file of ``{"messages": [{"role": ..., "content": ...}, ...]}`` chats."""
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    seed_offset: int = 1 << 29
    """SFT episodes use seeds from here on, apart from RL (0..) and eval seeds."""
    env_kwargs: dict[str, Any] = {}
    """Keyword arguments that override ``envs[].kwargs`` for the warm-up's solver episodes
    only (``{max_turns: 1}``: single-shot transcripts for a run that trains with retries).
    Not used with ``data``."""
    successful_only: bool = True
    """Learn only from the solver episodes the env judged successful; ``false`` imitates the
    solver whatever it scored (a demonstrator whose answer format differs from the verifier's,
    say). Not used with ``data``."""
    hand_over_optimizer: bool = False
    """Start RL's AdamW from the warm-up's moment estimates (at RL's learning rate) instead
    of from zero, so the first RL steps are not sign-like jumps of size ``lr``."""


class EvalConfig(_Section):
    """Held-out evaluation before and after RL (greedy), on seeds training never draws."""

    episodes: int = Field(64, ge=0)
    """Episodes per env; 0 skips evaluation."""
    seed: int = Field(1 << 30, ge=1 << 30)
    """First eval seed; training draws its seeds below ``2**30``."""
    batch_size: int = Field(64, ge=1)
    max_new_tokens: int | None = Field(None, ge=1)
    """Defaults to ``rollout.max_new_tokens``."""


class RunConfig(_Section):
    """Schedule, outputs and bookkeeping."""

    steps: int = Field(20, ge=0)
    seed: int = 0
    output_dir: str = "runs/{name}"
    name: str = "run"
    save_every: int = Field(10, ge=1)
    save_deltas: bool = False
    """Record the bf16 parameter change of every step in ``deltas/`` (cheap input for
    ``rlvr relex --from-deltas``; see :mod:`rlvr.training.deltas`)."""
    keep_checkpoints: int | None = Field(None, ge=1)
    """Keep only the newest N checkpoints; ``None`` keeps all (RELEX reads early ones)."""
    resume: bool = True
    """Continue from the newest checkpoint in ``output_dir`` if there is one."""
    sample_every: int = Field(5, ge=1)
    samples_per_step: int = Field(4, ge=0)
    tensorboard: bool = True
    plots: bool = True
    progress: bool = True


class TrainConfig(_Section):
    """A whole run; see ``scenarios/*.yaml``."""

    model: ModelConfig = ModelConfig()
    envs: list[EnvConfig] = Field(min_length=1)
    rollout: RolloutConfig = RolloutConfig()
    algorithm: AlgorithmConfig = AlgorithmConfig()
    sft: SFTConfig = SFTConfig()
    distill: DistillationConfig = DistillationConfig()
    eval: EvalConfig = EvalConfig()
    run: RunConfig = RunConfig()

    @model_validator(mode="after")
    def _feasible(self) -> TrainConfig:
        rollout = self.rollout
        if rollout.max_new_tokens >= rollout.max_total_tokens:
            raise ValueError("rollout.max_new_tokens must be below rollout.max_total_tokens")
        if self.algorithm.minibatches > rollout.prompts_per_step * rollout.group_size:
            raise ValueError("algorithm.minibatches exceeds the rollouts in a batch")
        if self.algorithm.overlong_buffer > rollout.max_total_tokens:
            raise ValueError("algorithm.overlong_buffer exceeds rollout.max_total_tokens")
        reload = rollout.server_reload_path
        if reload is not None and (self.model.lora is not None) != reload.rstrip("/").endswith(
            "load_lora_adapter"
        ):
            raise ValueError(
                "rollout.server_reload_path: LoRA runs push adapters (a load_lora_adapter "
                "endpoint), full-weight runs push whole models (any other endpoint)"
            )
        if self.model.lora is not None and self.sft.steps > 0 and self.algorithm.beta > 0:
            raise ValueError(
                "model.lora with sft.steps > 0 and algorithm.beta > 0: the KL reference of a "
                "LoRA run is the base model (adapters off), not the warmed-up policy"
            )
        algo = self.algorithm
        if algo.delta is not None and algo.delta <= 1 + algo.eps_high:
            raise ValueError("algorithm.delta must exceed 1 + algorithm.eps_high")
        tiny = self.model.tiny
        if tiny.hidden_size % tiny.num_heads:
            raise ValueError("model.tiny.hidden_size must be a multiple of model.tiny.num_heads")
        if rollout.group_filter == "informative":
            _check_informative_filter(self)
        _check_used(self)
        ids = [env.id for env in self.envs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"envs lists an id twice: {ids}")
        return self

    @property
    def output_dir(self) -> Path:
        return Path(self.run.output_dir.format(name=self.run.name))


def _check_used(config: TrainConfig) -> None:
    """Refuse settings that the rest of the scenario would silently ignore."""
    sft, algo = config.sft, config.algorithm
    if sft.hand_over_optimizer and (algo.optimizer != "adamw" or sft.steps == 0):
        raise ValueError(
            "sft.hand_over_optimizer hands the warm-up's AdamW moments to RL: it needs "
            "sft.steps > 0 and algorithm.optimizer adamw"
        )
    solved = [env.id for env in config.envs if env.solver]
    shaping = {
        f"envs[].solver of {solved}": bool(solved),
        "sft.successful_only=false": not sft.successful_only,
        "sft.env_kwargs": bool(sft.env_kwargs),
    }
    for name in (name for name, used in shaping.items() if used):
        if sft.data is not None or sft.steps == 0:
            raise ValueError(
                f"{name} only shapes the warm-up's scripted transcripts: it needs "
                "sft.steps > 0 and no sft.data"
            )
    if algo.token_credit.name == "turn" and [(r.name, r.params) for r in algo.rewards] != [
        ("env", {})
    ]:
        raise ValueError(
            "token_credit turn reads the env's per-turn rewards only: it needs the default "
            "algorithm.rewards [{name: env}]"
        )


def _check_informative_filter(config: TrainConfig) -> None:
    """``group_filter: informative`` decides on the env return, so it is refused wherever the
    trained signal is not that return (it would leak ground truth into a label-free run)."""
    if config.distill.reward_weight == 0:
        raise ValueError(
            "distill.reward_weight 0 ignores rewards, so rollout.group_filter must be all"
        )
    if [(r.name, r.params) for r in config.algorithm.rewards] != [("env", {})]:
        raise ValueError(
            "rollout.group_filter informative filters on the env return: it needs the default "
            "algorithm.rewards [{name: env}]"
        )
    if config.algorithm.token_credit.name == "turn":
        raise ValueError(
            "rollout.group_filter informative filters on the episode return, which token_credit "
            "turn does not train on: use group_filter all"
        )


def _format_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    value = first.get("input")
    quiet = isinstance(value, dict) or first["type"] in ("missing", "value_error")
    shown = "" if quiet else f", got {value!r}"
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{where or 'scenario'}: {message}{shown}{suffix}"


def parse_config(data: Mapping[str, Any]) -> TrainConfig:
    """Validate a scenario mapping; raises :class:`ConfigError` with a one-line message."""
    try:
        return TrainConfig.model_validate(dict(data))
    except ValidationError as error:
        raise ConfigError(_format_error(error)) from None


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a scenario YAML file, apply command-line overrides and validate it all."""
    path = Path(path)
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read scenario {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, got {type(data).__name__}")
    data.setdefault("run", {}).setdefault("name", path.stem)
    return parse_config(apply_overrides(data, overrides))
