"""The ``rlvr`` command line: ``envs``, ``check``, ``eval``, ``train``, ``serve`` and ``relex``.

Errors a user can cause (bad arguments, unknown env ids, unreadable datasets, unreachable
servers) print one line ``rlvr: error: ...`` and exit with status 2, without a traceback;
``RLVR_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import gymnasium as gym
import yaml

import rlvr
from rlvr.envs import ENV_SPECS
from rlvr.envs.remote.command import add_serve_arguments, non_negative_int, positive_int

if TYPE_CHECKING:
    from rlvr.agents import Agent
    from rlvr.agents.base import SamplingConfig


class UserError(Exception):
    """An error in what the user asked for: reported in one line, exit status 2."""


def non_negative_float(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see '{self.prog} --help')")


def _env_kwargs(pairs: Sequence[str], dataset: str | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise UserError(f"--env-arg expects KEY=VALUE, got {pair!r}")
        kwargs[key] = yaml.safe_load(value)
    if dataset is not None:
        kwargs["dataset"] = dataset
    return kwargs


def _importable_cwd() -> None:
    """Let ``module:ID`` and ``module:Class`` name modules in the working directory, as
    ``python -m rlvr`` does (a console script does not put it on ``sys.path``)."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())


def _resolve_env_id(text: str) -> str:
    """``ID`` or ``module:ID`` (the module registers the id when imported), as Gymnasium has it."""
    module, sep, env_id = text.rpartition(":")
    if sep:
        _importable_cwd()
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise UserError(f"cannot import {module!r} for {env_id!r}: {error}") from None
    return env_id


def _make_env(env_id: str, kwargs: dict[str, Any]) -> gym.Env[str, str]:
    if env_id not in gym.registry:
        known = ", ".join(sorted(i for i in gym.registry if i.startswith("rlvr/")))
        raise UserError(f"unknown env id {env_id!r}; registered rlvr envs: {known}")
    try:
        return gym.make(env_id, **kwargs)
    except (TypeError, ValueError) as error:
        raise UserError(f"cannot make {env_id}: {error}") from None


def _load_agent(spec: str, env_id: str, sampling: SamplingConfig | None = None) -> Agent:
    from rlvr.agents import load_agent

    _importable_cwd()
    try:
        return load_agent(spec, env_id=env_id, sampling=sampling)
    except (ValueError, ImportError, AttributeError, TypeError, OSError) as error:
        raise UserError(f"cannot load agent {spec!r}: {error}") from None


def cmd_envs(args: argparse.Namespace) -> int:
    width = max(len(env_id) for env_id in ENV_SPECS)
    for env_id, spec in ENV_SPECS.items():
        print(f"{env_id:<{width}}  {spec['summary']}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from rlvr.envs.checker import check_env

    kwargs = _env_kwargs(args.env_arg, args.dataset)
    env_id = _resolve_env_id(args.env_id)
    env = _make_env(env_id, kwargs)
    solver = None
    if args.agent != "oracle":
        solver = _load_agent(args.agent, env_id)
    report = check_env(
        env,
        solver=solver,
        env_fn=lambda: gym.make(env_id, **kwargs),
        seeds=tuple(range(args.seed, args.seed + args.episodes)),
        raise_on_failure=False,
    )
    print(
        report.summary()
        if not report.ok
        else f"{report.env_id}: all {len(report.checks)} checks passed"
    )
    return 0 if report.ok else 1


def cmd_eval(args: argparse.Namespace) -> int:
    from rich.console import Console
    from tqdm import tqdm

    from rlvr.agents.base import SamplingConfig
    from rlvr.agents.evaluation import evaluate
    from rlvr.agents.report import render_report

    kwargs = _env_kwargs(args.env_arg, args.dataset)
    env_id = _resolve_env_id(args.env_id)
    _make_env(env_id, kwargs).close()  # fail fast on a bad id or kwargs
    json_path = _writable(args.json) if args.json else None
    sampling = SamplingConfig(
        temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.sample_seed
    )
    agent = _load_agent(args.agent, env_id, sampling)
    total = args.episodes * args.samples
    with tqdm(total=total, desc=f"eval {env_id}", unit="ep", disable=args.quiet) as bar:
        report = evaluate(
            lambda: gym.make(env_id, **kwargs),
            agent,
            env_id=env_id,
            episodes=args.episodes,
            seed=args.seed,
            samples=args.samples,
            difficulty=args.difficulty,
            batch_size=args.batch_size,
            on_episode=lambda _: bar.update(1),
        )
    agent.close()
    Console().print(render_report(report))
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_json(with_records=args.records), indent=2) + "\n")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from rlvr.envs.remote.command import run_serve

    return run_serve(args, _resolve_env_id(args.env_id))


def _writable(text: str) -> Path:
    """Check before the run that the ``--json`` file can be written, so no result is lost."""
    path = Path(text)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError as error:
        raise UserError(f"cannot write --json {text!r}: {error.strerror or error}") from None
    return path


def cmd_train(args: argparse.Namespace) -> int:
    from rlvr.training.config import load_config

    config = load_config(args.scenario, args.overrides)
    if args.validate:
        print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), end="")
        return 0
    from rlvr.training.trainer import train

    summary = train(config)
    if int(os.environ.get("RANK", "0")) == 0:
        before, after = summary.get("before"), summary.get("after")
        if before and after:
            print(
                f"held-out success: {before['success_rate']:.3f} before RL -> "
                f"{after['success_rate']:.3f} after {summary['steps']} steps "
                f"(run: {config.output_dir})"
            )
    return 0


def cmd_relex(args: argparse.Namespace) -> int:
    from rlvr.training.relex import extrapolate_run

    result = extrapolate_run(
        args.run_dir,
        observe=args.observe,
        target_step=args.target_step,
        out=args.out,
        min_explained_variance=args.min_explained_variance,
        window=args.window,
        from_deltas=args.from_deltas,
        progress=not args.quiet,
    )
    summary = result.report["summary"]
    print(
        f"RELEX: {summary['extrapolated']}/{summary['tensors']} tensors extrapolated to step "
        f"{args.target_step} (mean explained variance {summary['explained_variance_mean']:.3f})"
        f" -> {result.out}"
    )
    return 0


def _add_relex_parser(commands: Any) -> None:
    relex = commands.add_parser(
        "relex", help="extrapolate a run's first checkpoints to a later step (RELEX)"
    )
    relex.add_argument("run_dir", help="run directory holding checkpoints/step-N/model/")
    relex.add_argument(
        "--observe",
        type=positive_int,
        required=True,
        help="snapshots to read; the first is the base",
    )
    relex.add_argument(
        "--target-step", type=non_negative_int, required=True, help="step to predict"
    )
    relex.add_argument("--out", metavar="DIR", help="output (default RUN_DIR/relex/step-S)")
    relex.add_argument(
        "--min-explained-variance",
        type=float,
        default=0.0,
        metavar="X",
        help="tensors below this rank-1 explained variance keep their last value (default 0)",
    )
    relex.add_argument(
        "--window", type=positive_int, help="fit the trend on the last W points only"
    )
    relex.add_argument(
        "--from-deltas", action="store_true", help="observe RUN_DIR/deltas/ instead of checkpoints"
    )
    relex.add_argument("--quiet", action="store_true", help="no progress bar")
    relex.set_defaults(func=cmd_relex)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rlvr", description=rlvr.__doc__.splitlines()[0] if rlvr.__doc__ else "")
    parser.add_argument("--version", action="version", version=f"rlvr-gym {rlvr.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    commands.add_parser("envs", help="list the registered environments").set_defaults(func=cmd_envs)

    def env_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "env_id", help="a registered id (rlvr/Math-v0) or module:ID for envs of your own"
        )
        sub.add_argument("--dataset", help="JSONL dataset for the env (instead of the generator)")
        sub.add_argument(
            "--env-arg",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="extra keyword for gym.make (repeatable; VALUE is read as YAML)",
        )
        sub.add_argument("--seed", type=int, default=0, help="seed of the first episode")

    check = commands.add_parser("check", help="run rlvr.envs.check_env on an env")
    env_options(check)
    check.add_argument("--agent", default="oracle", help="solver: 'oracle' (default) or any agent")
    check.add_argument("--episodes", type=positive_int, default=3, help="seeds per check")
    check.set_defaults(func=cmd_check)

    evaluate = commands.add_parser("eval", help="benchmark an agent on an env")
    env_options(evaluate)
    evaluate.add_argument(
        "--agent",
        default="scripted",
        help="scripted | random | echo | tiny | hf:PATH_OR_ID | a model directory | "
        "http(s)://URL[#model] | module:Class",
    )
    evaluate.add_argument("--episodes", type=positive_int, default=100, help="tasks to play")
    evaluate.add_argument(
        "--samples", type=positive_int, default=1, help="samples per task (pass@k)"
    )
    evaluate.add_argument("--difficulty", type=non_negative_int, help="pin the difficulty level")
    evaluate.add_argument(
        "--temperature",
        type=non_negative_float,
        default=1.0,
        help="sampling temperature of model-backed agents (0 = greedy)",
    )
    evaluate.add_argument(
        "--max-new-tokens", type=positive_int, default=512, help="reply budget per turn"
    )
    evaluate.add_argument("--sample-seed", type=int, help="seed of the agent's sampler")
    evaluate.add_argument(
        "--batch-size", type=positive_int, default=32, help="episodes in lockstep"
    )
    evaluate.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    evaluate.add_argument("--records", action="store_true", help="include episodes in --json")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(func=cmd_eval)

    train = commands.add_parser("train", help="train a policy on a scenario (YAML)")
    train.add_argument("scenario", help="a scenario file, e.g. scenarios/quickstart.yaml")
    train.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="override fields: rollout.group_size=4"
    )
    train.add_argument(
        "--validate", action="store_true", help="only validate the scenario and print it"
    )
    train.set_defaults(func=cmd_train)

    serve = commands.add_parser("serve", help="serve an env over HTTP and WebSocket")
    add_serve_arguments(serve)
    serve.set_defaults(func=cmd_serve)
    _add_relex_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except UserError as error:
        print(f"rlvr: error: {error}", file=sys.stderr)
        return 2
    except (ValueError, OSError, gym.error.Error, RuntimeError) as error:
        if os.environ.get("RLVR_DEBUG"):
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"rlvr: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rlvr: interrupted", file=sys.stderr)
        return 130
