"""Load test of ``rlvr serve``: steps/s and p99 step latency over loopback vs in-process.

For each env (``rlvr/Math-v0`` with a fixed wrong reply, so every episode runs its
``max_turns=8`` steps; ``rlvr/Ecom-v0`` with a fixed chat reply, which the scripted shopper
answers), the script starts ``rlvr serve`` as a subprocess on a free port and measures:

- in-process: ``gym.make`` + reset + step in this process, no server;
- ``RemoteEnv``, 1 session: the sync Gymnasium client (one WebSocket);
- 1, 32 and 256 concurrent sessions: that many asyncio WebSocket clients in this process,
  each playing episodes back to back (reset, then steps until the episode ends).

Every run lasts ``--seconds`` (episodes stop at the deadline); steps/s counts steps over the
run's wall time (resets included, as in-process); latency is send-to-answer per step. The
table gives the median over ``--runs`` runs of each figure. Client and server share the
machine's cores, so on a small VM the concurrent rows measure both.

    python benchmarks/bench_server.py              # about 2 minutes on 2 cores
    python benchmarks/bench_server.py --quick      # about 20 seconds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
from websockets.asyncio.client import ClientConnection, connect

import rlvr
from rlvr.envs.remote import RemoteEnv

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    """One env as served and as stepped locally, with the reply every step sends."""

    env_id: str
    kwargs: tuple[str, ...]
    reply: str

    def make_kwargs(self) -> dict[str, Any]:
        return rlvr.envs.remote.parse_env_kwargs(list(self.kwargs))


CASES = (
    Case("rlvr/Math-v0", ("difficulty=0", "max_turns=8"), "\\boxed{-12345}"),
    Case("rlvr/Ecom-v0", ("difficulty=0",), "Could you tell me more about what you need?"),
)


@dataclass(frozen=True)
class Run:
    """One timed run: steps, wall seconds and the per-step latencies (seconds)."""

    steps: int
    seconds: float
    latencies: list[float]

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds

    @property
    def p99_ms(self) -> float:
        return 1e3 * statistics.quantiles(self.latencies, n=100)[98]


def play_sync(
    reset: Callable[[int], object], step: Callable[[str], tuple], reply: str, seconds: float
) -> Run:
    """Episodes back to back through ``reset``/``step`` until the deadline."""
    latencies: list[float] = []
    start = time.perf_counter()
    deadline, seed = start + seconds, 0
    while time.perf_counter() < deadline:
        reset(seed)
        seed += 1
        done = False
        while not done and time.perf_counter() < deadline:
            t0 = time.perf_counter()
            result = step(reply)
            latencies.append(time.perf_counter() - t0)
            done = bool(result[2] or result[3])
    return Run(len(latencies), time.perf_counter() - start, latencies)


def in_process(case: Case, seconds: float) -> Run:
    env = gym.make(case.env_id, **case.make_kwargs())
    run = play_sync(lambda s: env.reset(seed=s), env.step, case.reply, seconds)
    env.close()
    return run


def remote_env(url: str, case: Case, seconds: float) -> Run:
    env = RemoteEnv(url)
    run = play_sync(lambda s: env.reset(seed=s), env.step, case.reply, seconds)
    env.close()
    return run


async def _client(
    ws: ClientConnection, index: int, reply: str, deadline: float, out: list[float]
) -> None:
    send, recv = ws.send, ws.recv
    seed = index * 1_000_000
    step = json.dumps({"type": "step", "data": {"message": reply}})
    while time.perf_counter() < deadline:
        await send(json.dumps({"type": "reset", "data": {"seed": seed}}))
        await recv()
        seed += 1
        done = False
        while not done and time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await send(step)
            answer = json.loads(await recv())
            out.append(time.perf_counter() - t0)
            done = answer["data"]["done"]


async def _concurrent(url: str, case: Case, sessions: int, seconds: float) -> Run:
    ws_url = url.replace("http://", "ws://") + "/ws"
    clients = await asyncio.gather(
        *(connect(ws_url, compression=None, max_size=None) for _ in range(sessions))
    )
    latencies: list[float] = []
    start = time.perf_counter()
    await asyncio.gather(
        *(_client(ws, i, case.reply, start + seconds, latencies) for i, ws in enumerate(clients))
    )
    run = Run(len(latencies), time.perf_counter() - start, latencies)
    await asyncio.gather(*(ws.close() for ws in clients))
    return run


def concurrent(url: str, case: Case, sessions: int, seconds: float) -> Run:
    return asyncio.run(_concurrent(url, case, sessions, seconds))


def start_server(case: Case) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "rlvr", "serve", case.env_id, "--port", "0"]
    command += ["--max-sessions", "512", *case.kwargs]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if " on http://" not in line:
        process.kill()
        raise RuntimeError(f"rlvr serve did not start: {line!r}")
    return process, line.split(" on ")[1].split()[0]


def stop_server(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=30)


def measure(
    case: Case, runs: int, seconds: float, levels: tuple[int, ...]
) -> list[tuple[str, float, float]]:
    """Rows ``(label, steps/s, p99 ms)``, each figure the median over ``runs`` runs."""
    process, url = start_server(case)
    rows: dict[str, list[Run]] = {}
    try:
        for _ in range(runs):
            rows.setdefault("in-process (no server)", []).append(in_process(case, seconds))
            rows.setdefault("RemoteEnv, 1 session", []).append(remote_env(url, case, seconds))
            for n in levels:
                label = f"{n} concurrent session{'s' if n > 1 else ''}"
                rows.setdefault(label, []).append(concurrent(url, case, n, seconds))
    finally:
        code = stop_server(process)
    print(f"  (rlvr serve exited with status {code} on SIGTERM)")
    return [
        (
            label,
            statistics.median(r.steps_per_s for r in found),
            statistics.median(r.p99_ms for r in found),
        )
        for label, found in rows.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per row (median reported)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each run")
    parser.add_argument("--quick", action="store_true", help="1 run of 1 s per row")
    parser.add_argument("--env", choices=[c.env_id for c in CASES], help="only this env")
    args = parser.parse_args()
    runs, seconds = (1, 1.0) if args.quick else (args.runs, args.seconds)
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{runs} run(s) of {seconds:g} s per row, medians"
    )
    for case in CASES:
        if args.env and case.env_id != args.env:
            continue
        print(f"\n{case.env_id} {' '.join(case.kwargs)}, reply {case.reply!r}")
        rows = measure(case, runs, seconds, (1, 32, 256))
        base = rows[0][1]
        print("| sessions | steps/s | p99 step latency (ms) | vs in-process |")
        print("|---|---|---|---|")
        for label, rate, p99 in rows:
            print(f"| {label} | {rate:,.0f} | {p99:.2f} | {rate / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
