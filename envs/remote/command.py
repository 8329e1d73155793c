"""``rlvr serve``: its arguments and its run (the ``rlvr`` CLI adds the subcommand)."""

from __future__ import annotations

import argparse
import ipaddress
from typing import Any

import gymnasium as gym

from rlvr.envs.remote.sessions import ServerConfig, parse_env_kwargs


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0 (also used by the ``rlvr`` CLI)."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (also used by the ``rlvr`` CLI)."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (an interface to bind) accepts local clients only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _allow_intermixed(parser: argparse.ArgumentParser) -> None:
    """Let KEY=VALUE follow options (``rlvr serve ID --port 0 max_turns=3``): plain argparse
    takes all positionals in one run, so it would reject ``max_turns=3`` there."""
    plain = parser.parse_known_args
    inside = False

    def parse_known_args(args: Any = None, namespace: Any = None) -> Any:
        nonlocal inside
        if inside:  # parse_known_intermixed_args calls back into parse_known_args
            return plain(args, namespace)
        inside = True
        try:
            return parser.parse_known_intermixed_args(args, namespace)
        finally:
            inside = False

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]  # per instance


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``rlvr serve`` (defaults as in :class:`ServerConfig`)."""
    _allow_intermixed(parser)
    defaults = ServerConfig("-")
    parser.add_argument("env_id", help="a registered id (rlvr/Math-v0) or module:ID")
    parser.add_argument(
        "env_args",
        nargs="*",
        metavar="KEY=VALUE",
        help="keyword for gym.make, the same for every session (VALUE is read as YAML)",
    )
    parser.add_argument(
        "--host", default=defaults.host, help="interface to bind (default: local clients only)"
    )
    parser.add_argument(
        "--port", type=non_negative_int, default=defaults.port, help="TCP port; 0 = any"
    )
    parser.add_argument(
        "--max-sessions",
        type=positive_int,
        default=defaults.max_sessions,
        help="sessions open at once; more are refused with 503",
    )
    parser.add_argument(
        "--session-timeout",
        type=_seconds,
        default=defaults.session_timeout,
        metavar="S",
        help="close a session idle for S seconds (0 = never: loopback --host only)",
    )
    parser.add_argument(
        "--step-timeout",
        type=_seconds,
        default=defaults.step_timeout,
        metavar="S",
        help="close a session whose reset or step runs over S seconds (0 = no limit)",
    )
    parser.add_argument(
        "--threads", type=positive_int, default=defaults.threads, help="threads that run env calls"
    )


def run_serve(args: argparse.Namespace, env_id: str) -> int:
    """Serve ``env_id`` until SIGINT/SIGTERM; bad input raises ValueError (one line)."""
    if env_id not in gym.registry:
        known = ", ".join(sorted(i for i in gym.registry if i.startswith("rlvr/")))
        raise ValueError(f"unknown env id {env_id!r}; registered rlvr envs: {known}")
    if not args.session_timeout and not is_loopback_host(args.host):
        raise ValueError(
            f"--session-timeout 0 lets any client hold sessions forever; it is refused with "
            f"--host {args.host} (use a loopback host, or a timeout > 0)"
        )
    config = ServerConfig(
        env_id=env_id,
        env_kwargs=parse_env_kwargs(args.env_args),
        host=args.host,
        port=args.port,
        max_sessions=args.max_sessions,
        session_timeout=args.session_timeout or None,
        step_timeout=args.step_timeout or None,
        threads=args.threads,
    )
    try:
        from rlvr.envs.remote.server import serve
    except ImportError as error:
        raise ValueError(
            f"rlvr serve needs FastAPI and uvicorn ({error}); pip install 'rlvr-gym[serve]'"
        ) from None
    return serve(config, announce=lambda line: print(line, flush=True), abandon_stuck_calls=True)
