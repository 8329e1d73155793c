"""The ``rlvr/Ecom-v0`` dialogue as a two-agent PettingZoo AEC environment.

Agents: ``assistant`` (the tool-calling agent of :class:`~rlvr.envs.ecom.env.EcomEnv`) and
``shopper`` (the customer; an LLM or any policy can play it). They take turns strictly:
assistant, shopper, assistant, ... When the assistant's call addresses the customer
(``ask_user``, ``ask_confirmation``, ``respond``), the shopper's next action is the reply the
assistant sees; a reply starting with "yes" approves a confirmation. Otherwise the shopper's
turn is a pass (its action is ignored; send ``""``). The shopper's first observation holds its
hidden goal written out in full, with the rules it should follow (reveal details when asked,
say "yes" only to a call that matches the goal exactly).

Observation: ``{"text": str}`` in a :class:`gymnasium.spaces.Dict` (PettingZoo's
``api_test`` needs observations whose leaves carry a dtype at the top level's
``"observation"`` key only, so a Dict holding the text passes). Action: ``str``.
Reward: the single-agent episode reward, paid to both agents at the end (cooperative).
Episode end: as in the single-agent env, or truncation after ``max_cycles`` assistant turns.

Module functions, as PettingZoo envs provide: :func:`env` (the AEC env with PettingZoo's
default wrappers), :class:`raw_env` and :func:`parallel_env`.
"""

from __future__ import annotations

from typing import Any

from gymnasium import spaces
from pettingzoo import AECEnv
from pettingzoo.utils import wrappers
from pettingzoo.utils.conversions import aec_to_parallel

from rlvr.envs.ecom.env import EcomEnv
from rlvr.envs.ecom.tools import TOOLS, USER_TOOLS
from rlvr.envs.ecom.user_sim import ScriptedUser, clause
from rlvr.envs.spaces import UnicodeText
from rlvr.envs.tool_calls import ToolCall, check_arguments, parse_tool_call

OVER = "(The conversation is over. Send an empty message.)"
PASS = "(The assistant used a tool; no reply is needed. Send an empty message.)"
SHOPPER_RULES = (
    "You are a customer of an online store talking to its assistant. Your goal is below. Tell "
    "the assistant your first request; reveal a detail when the assistant asks for it; when "
    "asked for 'next', tell your next request (or say \"That's all, thanks. Please submit.\"). "
    "Answer a confirmation with 'yes' only when the proposed call matches your goal exactly; "
    "otherwise say 'no' and what is wrong. Never end the conversation yourself."
)


class RelayUser(ScriptedUser):
    """A user whose replies come from the ``shopper`` agent (set ``reply`` before each step)."""

    reply = ""

    def ask(self, slot: str) -> str:
        return self.reply

    def free_text(self, text: str) -> str:
        return self.reply

    def confirm(self, tool: str, arguments: Any) -> tuple[str, bool]:
        from rlvr.envs.ecom.user_sim import _normal

        approved = self.reply.strip().lower().startswith("yes")
        if approved:
            self.approved.append((tool, _normal(arguments)))
        return self.reply, approved


def goal_text(user: ScriptedUser) -> str:
    """The shopper's hidden goal, every slot written out."""
    scenario = user.scenario
    lines = [
        SHOPPER_RULES,
        f"Your name: {scenario.user.name}; email: {scenario.user.email}; zip: {scenario.user.zip}.",
        "Your requests, in order:",
    ]
    for index, step in enumerate(scenario.steps, start=1):
        told = " ".join(clause(s, v, 0) for s, v in step.slots)
        lines.append(f"{index}. {user._intro(step).split(' I have')[0]} {told}".strip())
        if step.switch:
            lines.append(
                "   When the assistant first asks you to confirm adding it, change your mind: "
                + clause(step.switch[0], step.switch[1], 0)
            )
    return "\n".join(lines)


class raw_env(AECEnv):
    """Two-agent Ecom dialogue (see the module docstring). kwargs go to :class:`EcomEnv`."""

    metadata = {"render_modes": ["ansi"], "name": "ecom_v0", "is_parallelizable": True}  # noqa: RUF012

    def __init__(self, render_mode: str | None = None, max_cycles: int = 64, **kwargs: Any):
        super().__init__()
        self.env = EcomEnv(render_mode=None, **kwargs)
        self.render_mode = render_mode
        self.max_cycles = max_cycles
        self.possible_agents = ["assistant", "shopper"]
        text = UnicodeText(EcomEnv.max_observation_chars)
        self._observation_spaces = {a: spaces.Dict({"text": text}) for a in self.possible_agents}
        self._action_spaces = {
            a: UnicodeText(EcomEnv.max_action_chars) for a in self.possible_agents
        }
        self._texts: dict[str, str] = {}
        self._pending: str | None = None
        self._ended: float | None = None
        self.agents: list[str] = []

    def observation_space(self, agent: str) -> spaces.Space[Any]:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space[Any]:
        return self._action_spaces[agent]

    def observe(self, agent: str) -> dict[str, str]:
        return {"text": self._texts.get(agent, "")}

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        """Start an episode; ``options`` may hold ``difficulty`` or ``task_id`` (others are
        ignored, as PettingZoo's api_test passes arbitrary options)."""
        known = {k: v for k, v in (options or {}).items() if k in ("difficulty", "task_id")}
        opening, info = self.env.reset(seed=seed, options=known)
        task = self.env.task
        assert task is not None
        self.scripted = self.env.user
        relay = RelayUser(self.env.scenario, task.data["user_seed"], 0.0, True)
        self.env.user = relay
        self.agents = self.possible_agents[:]
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {"assistant": dict(info), "shopper": {"role": "user"}}
        self._texts = {
            "assistant": opening,
            "shopper": f"{goal_text(self.scripted)}\n\nYou opened with: {opening}",
        }
        self._pending = None
        self._ended = None
        self.cycles = 0
        self.agent_selection = "assistant"

    def step(self, action: Any) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(None)  # the parallel wrapper sends the dead agent's action too
            return
        self._clear_rewards()
        text = action if isinstance(action, str) else ""
        if agent == "assistant":
            self.cycles += 1
            if _addresses_user(text):
                self._pending = text
                self._texts["shopper"] = f"The assistant asks you: {text}"
            else:
                self._advance(text)
                self._texts["shopper"] = OVER if self._ended is not None else PASS
            self.agent_selection = "shopper"
        else:
            if self._pending is not None:
                self.env.user.reply = text[:2000]
                pending, self._pending = self._pending, None
                self._advance(pending)
            self.agent_selection = "assistant"
            self._end_of_cycle()
        self._accumulate_rewards()

    def _end_of_cycle(self) -> None:
        """Agents die only at the end of a cycle (as the parallel wrapper requires)."""
        if self._ended is not None:
            self.rewards = {a: self._ended for a in self.agents}
            self.terminations = {a: True for a in self.agents}
        elif self.cycles >= self.max_cycles:
            self.truncations = {a: True for a in self.agents}

    def _advance(self, action: str) -> None:
        observation, reward, terminated, _, info = self.env.step(action)
        self._texts["assistant"] = observation
        self.infos["assistant"] = dict(info)
        if terminated:
            self._ended = float(reward)
            self.infos["shopper"] = {k: v for k, v in info.items() if k != "role"}

    def scripted_reply(self) -> str:
        """What the scripted user would answer to the pending call ("" when none)."""
        if self._pending is None:
            return ""
        call = parse_tool_call(self._pending)
        assert isinstance(call, ToolCall)
        args = dict(call.arguments)
        name = call.name
        if name == "ask_user":
            return self.scripted.ask(str(args["slot"]))
        if name == "respond":
            return self.scripted.free_text(str(args["text"]))
        return self.scripted.confirm(str(args["tool"]), args["arguments"])[0]

    def render(self) -> str | None:
        return self._texts.get("assistant") if self.render_mode == "ansi" else None

    def close(self) -> None:
        self.env.close()


def _addresses_user(text: str) -> bool:
    call = parse_tool_call(text)
    if not isinstance(call, ToolCall) or call.name not in USER_TOOLS:
        return False
    return check_arguments(call, TOOLS) is None


def env(**kwargs: Any) -> AECEnv:
    """The AEC env with PettingZoo's default wrappers (order enforcing, bounds)."""
    return wrappers.OrderEnforcingWrapper(raw_env(**kwargs))


def parallel_env(**kwargs: Any) -> Any:
    """The parallel version: both agents send an action every cycle; the one whose turn it
    is not is ignored (see the module docstring)."""
    return aec_to_parallel(raw_env(**kwargs))
