"""The env server (``rlvr serve``) and its client ``rlvr/Remote-v0``: equality with local
episodes, concurrency, timeouts, dropped clients, error codes, and clean shutdown."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from served import running
from websockets.asyncio.client import connect as async_connect
from websockets.sync.client import connect

import rlvr
from rlvr.envs.remote import RemoteEnv, ServerConfig, parse_env_kwargs
from rlvr.envs.remote.command import is_loopback_host
from rlvr.envs.remote.protocol import ResetRequest
from rlvr.envs.remote.server import create_app
from rlvr.envs.remote.sessions import SessionManager

ROOT = Path(__file__).resolve().parents[1]
gym.register_envs(rlvr)


class SlowEnv(gym.Env[str, str]):
    """Sleeps 0.6 s on the action "slow" (a stand-in for a blocking sandbox step), raises on
    "boom", puts numpy values in ``info`` on "numpy" and a set on "set"; counts its closes."""

    closed = 0

    def __init__(self) -> None:
        self.observation_space = rlvr.envs.UnicodeText(100)
        self.action_space = rlvr.envs.UnicodeText(100)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return "ready", {}

    def step(self, action: str):
        if action == "slow":
            time.sleep(0.6)
        if action == "boom":
            raise RuntimeError("the sandbox fell over")
        if action == "numpy":
            info = {"ok": np.bool_(True), "x": np.float32(0.5), "ids": np.arange(3)}
            return action, np.float64(0.25), np.bool_(False), False, info
        if action == "set":
            return action, 0.0, False, False, {"tags": {"a"}}
        return action, 0.0, False, False, {}

    def close(self) -> None:
        SlowEnv.closed += 1


gym.register("test/Slow-v0", entry_point=SlowEnv, disable_env_checker=True)


@pytest.fixture(scope="module")
def math_server() -> Iterator[tuple[str, Any]]:
    config = ServerConfig("rlvr/Math-v0", {"max_turns": 3}, max_sessions=300, max_body_bytes=4096)
    with running(config) as served:
        yield served


def call(url: str, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    raw = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
    connection.request(method, path, body=raw)
    response = connection.getresponse()
    data = json.loads(response.read())
    connection.close()
    return response.status, data


def wait_for_sessions(url: str, count: int, within: float = 5.0) -> int:
    deadline = time.monotonic() + within
    while True:
        sessions = call(url, "GET", "/health")[1]["sessions"]
        if sessions == count or time.monotonic() > deadline:
            return sessions
        time.sleep(0.05)


def play_both(local: gym.Env, remote: gym.Env, seed: int, replies: list[str] | None = None):
    """Play the same episode locally and remotely (oracle replies unless given); compare."""
    first = local.reset(seed=seed)
    assert remote.reset(seed=seed) == first
    for turn in range(50):
        action = replies[turn] if replies else local.unwrapped.oracle_action()
        expected = local.step(action)
        assert remote.step(action) == expected
        if expected[2] or expected[3]:
            return expected
    raise AssertionError("the episode did not end")


# ---------------------------------------------------------------------- equality with local


def test_seeded_math_episodes_equal_local_ones(math_server):
    url, _ = math_server
    remote, local = gym.make("rlvr/Remote-v0", url=url), gym.make("rlvr/Math-v0", max_turns=3)
    wrong = ["\\boxed{-12345}", "no idea \ud800 😀", "\\boxed{x}"]
    outcomes = [play_both(local, remote, seed, wrong) for seed in range(4)]
    assert all(o[1] == 0.0 and o[2] and o[4]["success"] is False for o in outcomes)
    solved = play_both(local, remote, seed=9)
    assert solved[1] == 1.0 and solved[4]["success"] is True
    remote.close()


def test_seeded_ecom_episodes_equal_local_ones():
    with running(ServerConfig("rlvr/Ecom-v0", {"difficulty": 1})) as (url, _):
        remote = gym.make("rlvr/Remote-v0", url=url)
        local = gym.make("rlvr/Ecom-v0", difficulty=1)
        for seed in (3, 4):
            final = play_both(local, remote, seed)
            assert final[2] and final[4]["success"] is True
            assert "reward_components" in final[4] and "tools" not in final[4]
        remote.close()


def test_http_sessions_play_multi_turn_episodes_like_local_ones(math_server):
    url, _ = math_server
    local = gym.make("rlvr/Math-v0", max_turns=3)
    observation, info = local.reset(seed=5)
    status, data = call(url, "POST", "/reset", {"seed": 5})
    assert status == 200 and data["observation"] == {"text": observation, "info": info}
    assert data["reward"] is None and data["done"] is False
    session = data["session_id"]
    for reply in ["\\boxed{0.5}", "\\boxed{-1}", "\\boxed{7}"]:
        obs, reward, terminated, truncated, info = local.step(reply)
        status, data = call(url, "POST", "/step", {"session_id": session, "action": reply})
        assert status == 200 and data["observation"] == {"text": obs, "info": info}
        assert (data["reward"], data["terminated"], data["truncated"]) == (
            reward,
            terminated,
            truncated,
        )
        assert data["done"] is (terminated or truncated) and data["session_id"] == session
    status, state = call(url, "GET", f"/state?session_id={session}")
    assert status == 200 and state["step_count"] == 3 and state["episodes"] == 1
    assert call(url, "DELETE", f"/sessions/{session}") == (
        200,
        {"session_id": session, "closed": True},
    )
    assert call(url, "GET", f"/state?session_id={session}")[0] == 404


def test_remote_env_passes_gymnasium_check_env(math_server):
    env = gym.make("rlvr/Remote-v0", url=url_of(math_server))
    check_env(env.unwrapped)
    assert env.observation_space == rlvr.envs.UnicodeText(1_000_000)
    assert env.action_space == rlvr.envs.UnicodeText(100_000)
    env.close()


def url_of(served: tuple[str, Any]) -> str:
    return served[0]


# ---------------------------------------------------------------------- concurrency


def test_256_sessions_open_at_once_all_step_correctly(math_server):
    url, _ = math_server
    ws_url = url.replace("http://", "ws://") + "/ws"
    local = gym.make("rlvr/Math-v0", max_turns=3)
    expected = []
    for seed in range(256):
        observation, _ = local.reset(seed=seed)
        expected.append((observation, local.step("\\boxed{0}")[0]))

    async def main() -> list[tuple[str, str]]:
        clients = await asyncio.gather(
            *(async_connect(ws_url, compression=None) for _ in range(256))
        )
        assert call(url, "GET", "/health")[1]["sessions"] == 256

        async def play(ws: Any, seed: int) -> tuple[str, str]:
            await ws.send(json.dumps({"type": "reset", "data": {"seed": seed}}))
            first = json.loads(await ws.recv())["data"]["observation"]["text"]
            await ws.send(json.dumps({"type": "step", "data": {"message": "\\boxed{0}"}}))
            second = json.loads(await ws.recv())["data"]["observation"]["text"]
            return first, second

        results = await asyncio.gather(*(play(ws, i) for i, ws in enumerate(clients)))
        await asyncio.gather(*(ws.close() for ws in clients))
        return list(results)

    assert asyncio.run(main()) == expected
    assert wait_for_sessions(url, 0) == 0


def test_a_blocking_step_does_not_block_other_sessions():
    with running(ServerConfig("test/Slow-v0")) as (url, _):
        slow, fast = RemoteEnv(url), RemoteEnv(url)
        slow.reset(), fast.reset()
        thread = threading.Thread(target=slow.step, args=("slow",))
        thread.start()
        time.sleep(0.1)
        start = time.monotonic()
        assert fast.step("fast")[0] == "fast"
        assert time.monotonic() - start < 0.3
        thread.join()
        slow.close(), fast.close()


def test_a_busy_session_refuses_a_second_request_and_env_errors_do_not_kill_the_server():
    with running(ServerConfig("test/Slow-v0")) as (url, _):
        sid = call(url, "POST", "/reset", {})[1]["session_id"]
        slow = threading.Thread(
            target=call,
            args=(url, "POST", "/step"),
            kwargs={"body": {"session_id": sid, "action": "slow"}},
        )
        slow.start()
        time.sleep(0.1)
        status, data = call(url, "POST", "/step", {"session_id": sid, "action": "fast"})
        assert (status, data["code"]) == (409, "SESSION_BUSY")
        slow.join()
        status, data = call(url, "POST", "/step", {"session_id": sid, "action": "boom"})
        assert (status, data["code"]) == (500, "ENV_ERROR")
        assert data["error"] == "the env raised in step: RuntimeError: the sandbox fell over"
        assert call(url, "POST", "/step", {"session_id": sid, "action": "x"})[0] == 409
        assert call(url, "POST", "/reset", {"session_id": sid})[0] == 200
        assert call(url, "POST", "/step", {"session_id": sid, "action": "x"})[0] == 200


# ---------------------------------------------------------------------- session lifetime


def test_close_frees_the_session_and_reset_reconnects(math_server):
    url, _ = math_server
    before = call(url, "GET", "/health")[1]["sessions"]
    env = RemoteEnv(url)
    assert call(url, "GET", "/health")[1]["sessions"] == before + 1
    env.close()
    env.close()
    assert wait_for_sessions(url, before) == before
    with pytest.raises(ConnectionError, match="not connected"):
        env.step("x")
    assert env.reset(seed=1)[1]["turn"] == 0  # a new session
    env.close()


def test_idle_sessions_time_out_over_http_and_websocket():
    with running(ServerConfig("rlvr/Math-v0", session_timeout=0.3)) as (url, _):
        session = call(url, "POST", "/reset", {"seed": 1})[1]["session_id"]
        env = RemoteEnv(url)
        env.reset(seed=1)
        assert call(url, "GET", "/health")[1]["sessions"] == 2
        assert wait_for_sessions(url, 0) == 0
        assert call(url, "GET", f"/state?session_id={session}")[0] == 404
        with pytest.raises(ConnectionError, match=r"code 4408: session idle for more than 0.3 s"):
            env.step("\\boxed{1}")


def test_a_dropped_websocket_client_frees_its_session(math_server):
    url, _ = math_server
    before = call(url, "GET", "/health")[1]["sessions"]
    with connect(url.replace("http", "ws") + "/ws") as ws:
        ws.send(json.dumps({"type": "reset", "data": {"seed": 1}}))
        assert json.loads(ws.recv())["type"] == "observation"
        assert call(url, "GET", "/health")[1]["sessions"] == before + 1
        ws.socket.close()  # the client vanishes without a close handshake
    assert wait_for_sessions(url, before) == before


# ---------------------------------------------------------------------- bad requests


def test_bad_http_requests_get_clear_errors(math_server):
    url, _ = math_server
    sid = call(url, "POST", "/reset", {"seed": 2})[1]["session_id"]
    cases = [
        ("POST", "/reset", "{bad", 400, "BAD_REQUEST", "not valid JSON"),
        ("POST", "/reset", "[1, 2]", 400, "BAD_REQUEST", "must be a JSON object, got list"),
        ("POST", "/reset", {"seed": -1}, 400, "BAD_REQUEST", "'seed' must be an integer >= 0"),
        ("POST", "/reset", {"seed": "7"}, 400, "BAD_REQUEST", "'seed' must be an integer"),
        ("POST", "/reset", {"sed": 7}, 400, "BAD_REQUEST", "unknown reset field(s) ['sed']"),
        ("POST", "/reset", {"options": {"x": 1}}, 400, "INVALID_ARGUMENT", "unknown reset options"),
        ("POST", "/reset", {"session_id": "nope"}, 404, "SESSION_NOT_FOUND", "no open session"),
        ("POST", "/step", {"action": "hi"}, 400, "BAD_REQUEST", "missing field 'session_id'"),
        ("POST", "/step", {"session_id": sid}, 400, "BAD_REQUEST", "missing field 'action'"),
        ("POST", "/step", {"session_id": sid, "action": 5}, 400, "BAD_REQUEST", "must be a string"),
        (
            "POST",
            "/step",
            {"session_id": sid, "action": {"text": "hi"}},
            400,
            "BAD_REQUEST",
            "'message'",
        ),
        ("POST", "/step", {"session_id": "nope", "action": "hi"}, 404, "SESSION_NOT_FOUND", "nope"),
        ("POST", "/step", "x" * 5000, 413, "TOO_LARGE", "over the limit of 4096 bytes"),
        (
            "POST",
            "/step",
            {"session_id": sid, "action": "hi", "timeout_s": 5},
            400,
            "BAD_REQUEST",
            "unknown step field(s) ['timeout_s']",
        ),
        ("GET", "/state", None, 400, "BAD_REQUEST", "missing query parameter 'session_id'"),
        ("DELETE", "/sessions/nope", None, 404, "SESSION_NOT_FOUND", "no open session 'nope'"),
        ("GET", "/nowhere", None, 404, "NOT_FOUND", "Not Found"),
    ]
    for method, path, body, status, code, text in cases:
        got_status, data = call(url, method, path, body)
        assert (got_status, data["code"]) == (status, code), (method, path, body, data)
        assert text in data["error"], (data, text)
    assert call(url, "POST", "/step", {"session_id": sid, "action": "\\boxed{0}"})[0] == 200
    status, data = call(url, "POST", "/step", {"session_id": sid, "action": "\\boxed{0}"})
    assert status == 200 and data["done"] is False  # max_turns=3: one more try
    call(url, "POST", "/step", {"session_id": sid, "action": "\\boxed{0}"})
    status, data = call(url, "POST", "/step", {"session_id": sid, "action": "\\boxed{0}"})
    assert (status, data["code"]) == (409, "EPISODE_OVER") and "reset" in data["error"]
    call(url, "DELETE", f"/sessions/{sid}")


def test_bad_websocket_messages_get_error_messages_and_the_session_goes_on(math_server):
    url, _ = math_server
    with connect(url.replace("http", "ws") + "/ws") as ws:

        def ask(raw: str) -> dict[str, Any]:
            ws.send(raw)
            return json.loads(ws.recv())

        cases = [
            ("{nope", 400, "BAD_REQUEST", "not valid JSON"),
            ('{"type": "step", "data": {"message": "hi"}}', 409, "NO_EPISODE", "reset first"),
            ('{"type": "jump"}', 400, "UNKNOWN_TYPE", "unknown message type 'jump'"),
            ('{"type": "reset", "data": [1]}', 400, "BAD_REQUEST", "'data' must be a JSON object"),
            ('{"type": "step", "data": {"message": 3}}', 400, "BAD_REQUEST", "must be a string"),
        ]
        for raw, status, code, text in cases:
            reply = ask(raw)
            assert reply["type"] == "error" and reply["data"]["code"] == code, reply
            assert reply["data"]["status"] == status and text in reply["data"]["message"]
        assert ask('{"type": "reset", "data": {"seed": 0}}')["type"] == "observation"
        state = ask('{"type": "state"}')["data"]
        assert state["episodes"] == 1 and state["step_count"] == 0
        # Only its own connection may use a WebSocket session.
        assert call(url, "GET", f"/state?session_id={state['session_id']}")[0] == 404


def test_remote_env_errors_name_the_url_and_the_server_message(math_server):
    url, _ = math_server
    with pytest.raises(ConnectionError, match=r"cannot reach the env server at http://127.0.0.1:9"):
        gym.make("rlvr/Remote-v0", url="http://127.0.0.1:9")
    with pytest.raises(ValueError, match="url must look like"):
        RemoteEnv("ftp://example.org")
    env = gym.make("rlvr/Remote-v0", url=url)
    with pytest.raises(ValueError, match=f"{url}: unknown reset options"):
        env.reset(options={"colour": "red"})
    env.unwrapped.reset(seed=1)  # past OrderEnforcing, to reach the server's check
    env.unwrapped.step("\\boxed{0}"), env.unwrapped.step("\\boxed{0}"), env.unwrapped.step("0")
    with pytest.raises(gym.error.ResetNeeded, match="the episode is over"):
        env.unwrapped.step("\\boxed{0}")
    with pytest.raises(TypeError, match="must be str, got int"):
        env.step(3)
    env.close()


def test_a_full_server_refuses_new_sessions_with_503():
    with running(ServerConfig("rlvr/Math-v0", max_sessions=2)) as (url, _):
        first = RemoteEnv(url)
        assert call(url, "POST", "/reset", {})[0] == 200
        status, data = call(url, "POST", "/reset", {})
        assert (status, data["code"]) == (503, "CAPACITY_REACHED")
        assert "all 2 sessions are in use" in data["error"]
        with pytest.raises(ConnectionError, match="refused a session: all 2 sessions are in use"):
            RemoteEnv(url)
        first.close()


def test_env_kwargs_and_config_are_validated():
    assert parse_env_kwargs(["difficulty=[0, 2]", "max_turns=3"]) == {
        "difficulty": [0, 2],
        "max_turns": 3,
    }
    with pytest.raises(ValueError, match="KEY=VALUE, got 'difficulty'"):
        parse_env_kwargs(["difficulty"])
    with pytest.raises(ValueError, match="max_sessions must be >= 1"):
        ServerConfig("rlvr/Math-v0", max_sessions=0)
    with pytest.raises(ValueError, match="step_timeout must be > 0 seconds, got 0"):
        ServerConfig("rlvr/Math-v0", step_timeout=0)
    with pytest.raises(ValueError, match="cannot make 'rlvr/Math-v0': difficulty must be"):
        create_app(ServerConfig("rlvr/Math-v0", {"difficulty": "hard"}))


# ---------------------------------------------------------------------- the command


def test_rlvr_serve_starts_answers_health_and_exits_cleanly_on_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "rlvr", "serve", "rlvr/Math-v0", "--port", "0", "max_turns=2"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("serving rlvr/Math-v0 on http://127.0.0.1:"), line
        url = line.split(" on ")[1].split()[0]
        status, health = call(url, "GET", "/health")
        assert (
            status == 200 and health["status"] == "healthy" and health["env_id"] == "rlvr/Math-v0"
        )
        env = RemoteEnv(url)  # an open session must not hold up the shutdown
        env.reset(seed=0)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        with pytest.raises(ConnectionError):
            env.step("\\boxed{1}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_rlvr_serve_reports_bad_input_in_one_line(capsys):
    from rlvr.cli import main

    assert main(["serve", "rlvr/Nope-v0"]) == 2
    assert "unknown env id 'rlvr/Nope-v0'" in capsys.readouterr().err
    assert main(["serve", "rlvr/Math-v0", "--max-sessions", "0"]) == 2
    assert "argument --max-sessions: must be >= 1, got 0" in capsys.readouterr().err
    assert main(["serve", "rlvr/Math-v0", "--threads", "0"]) == 2
    assert "argument --threads: must be >= 1, got 0" in capsys.readouterr().err
    assert main(["serve", "rlvr/Math-v0", "--host", "0.0.0.0", "--session-timeout", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--session-timeout 0 lets any client hold sessions forever" in err
    assert "refused with --host 0.0.0.0" in err
    assert [is_loopback_host(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "a.b")] == [
        True,
        True,
        True,
        False,
        False,
    ]


# ---------------------------------------------------------------------- hostile input


def test_a_chunked_body_over_the_limit_is_refused_while_it_arrives(math_server):
    url, _ = math_server
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"POST /step HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(5):  # 5000 bytes, past the 4096-byte limit; the body never ends
            sock.sendall(b"3e8\r\n" + b"x" * 1000 + b"\r\n")
        answer = b""  # a whole-body read would wait for the last chunk, and time out here
        while not answer.endswith(b"}"):
            received = sock.recv(65536)
            assert received, answer
            answer += received
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b'"code":"TOO_LARGE"' in answer and b"over the limit of 4096 bytes" in answer
    # A chunked body under the limit is read whole.
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("POST", "/reset", body=iter([b'{"seed"', b": 3}"]), encode_chunked=True)
    response = connection.getresponse()
    data = json.loads(response.read())
    assert response.status == 200 and data["observation"]["info"]["turn"] == 0
    connection.close()
    call(url, "DELETE", f"/sessions/{data['session_id']}")


def test_json_past_python_limits_is_a_400_over_http_and_websocket():
    huge_int = '{"seed": ' + "1" * 5000 + "}"
    deep = "[" * 100_000 + "]" * 100_000
    cases = [(huge_int, "Exceeds the limit (4300 digits)"), (deep, "nested too deeply")]
    with running(ServerConfig("rlvr/Math-v0")) as (url, _):
        for raw, text in cases:
            status, data = call(url, "POST", "/reset", raw)
            assert (status, data["code"]) == (400, "BAD_REQUEST") and text in data["error"]
        with connect(url.replace("http", "ws") + "/ws") as ws:
            for raw, text in cases:
                ws.send(raw)
                reply = json.loads(ws.recv())
                assert reply["type"] == "error" and reply["data"]["code"] == "BAD_REQUEST"
                assert text in reply["data"]["message"]
            ws.send('{"type": "reset", "data": {"seed": 0}}')  # the session goes on
            assert json.loads(ws.recv())["type"] == "observation"


def test_numpy_values_in_info_travel_as_python_values_and_a_set_is_an_error():
    with running(ServerConfig("test/Slow-v0")) as (url, _):
        sid = call(url, "POST", "/reset", {})[1]["session_id"]
        status, data = call(url, "POST", "/step", {"session_id": sid, "action": "numpy"})
        assert status == 200 and data["reward"] == 0.25 and data["terminated"] is False
        assert data["observation"]["info"] == {"ok": True, "x": 0.5, "ids": [0, 1, 2]}
        status, data = call(url, "POST", "/step", {"session_id": sid, "action": "set"})
        assert (status, data["code"]) == (500, "ENV_ERROR")
        assert "not JSON-representable: set is not" in data["error"]
        env = RemoteEnv(url)
        env.reset()
        _, reward, terminated, _, info = env.step("numpy")
        assert (reward, terminated) == (0.25, False) and info == {
            "ok": True,
            "x": 0.5,
            "ids": [0, 1, 2],
        }
        assert type(info["ok"]) is bool and type(info["x"]) is float
        with pytest.raises(RuntimeError, match="not JSON-representable"):
            env.step("set")
        assert env.step("fine")[0] == "fine"  # the connection survives
        env.close()


def test_a_stuck_step_times_out_breaks_its_session_and_frees_its_place():
    config = ServerConfig("test/Slow-v0", step_timeout=0.2, max_sessions=1)
    with running(config) as (url, _):
        closed = SlowEnv.closed
        sid = call(url, "POST", "/reset", {})[1]["session_id"]
        start = time.monotonic()
        status, data = call(url, "POST", "/step", {"session_id": sid, "action": "slow"})
        assert time.monotonic() - start < 0.5
        assert (status, data["code"]) == (504, "ENV_TIMEOUT")
        assert data["error"] == "the env did not finish step within 0.2 s; the session was closed"
        assert call(url, "GET", "/health")[1]["sessions"] == 0  # its place is free at once
        for method, path, body in [
            ("POST", "/step", {"session_id": sid, "action": "x"}),
            ("POST", "/reset", {"session_id": sid}),
            ("GET", f"/state?session_id={sid}", None),
        ]:
            status, data = call(url, method, path, body)
            assert (status, data["code"]) == (410, "SESSION_BROKEN"), data
            assert "the env did not finish step within 0.2 s; open a new session" in data["error"]
        env = RemoteEnv(url)  # the one place is free
        env.reset()
        with pytest.raises(ConnectionError, match=r"did not finish step within 0\.2 s"):
            env.step("slow")
        assert env.reset()[0] == "ready"  # a new session
        assert env.step("fast")[0] == "fast"
        time.sleep(0.8)  # the stuck calls return; their envs are closed, not reused
        assert SlowEnv.closed == closed + 2
        env.close()


def test_a_cancelled_call_keeps_its_session_locked_until_the_worker_is_done():
    async def main() -> None:
        manager = SessionManager(ServerConfig("test/Slow-v0"), SlowEnv)
        session = await manager.open("http")
        await manager.reset(session, ResetRequest())
        task = asyncio.ensure_future(manager.step(session, "slow"))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert session.lock.locked() and manager.running_calls == 1
        start = time.monotonic()
        await manager.close_all(wait=0.1)  # does not wait for the stuck worker
        assert time.monotonic() - start < 0.4 and manager.active == 0
        await asyncio.sleep(0.7)
        assert not session.lock.locked() and manager.running_calls == 0

    asyncio.run(main())
