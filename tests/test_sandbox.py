"""The sandbox against hostile programs: host unharmed, bounded time, reward 0.

Every hostile case runs through the env's scorer (``check_program``) with a 1 s limit, and
checks three things: the host is intact (its files, its environment, its own liveness), the
run ended within the limit plus a small margin, and the reward is 0.
"""

from __future__ import annotations

import os
import socket
import time

import pytest

from rlvr.rewards.code import check_program, extract_program, judge_run
from rlvr.rewards.sandbox import SANDBOX, Case, Limits, Sandbox, TestSuite, run_tests

SUITE = TestSuite("add", cases=(Case((1, 2), 3), Case((-4, 4), 0), Case((10, 5), 15)))
LIMITS = Limits(timeout=1.0, memory_mb=256)
MARGIN = 1.5
"""Seconds a hostile run may take beyond its time limit (process teardown, scheduling)."""
GOOD = "def add(a, b):\n    return a + b\n"


def hostile(program: str, limits: Limits = LIMITS, suite: TestSuite = SUITE):
    started = time.monotonic()
    verdict = check_program(program, suite, limits, mode="fraction")
    elapsed = time.monotonic() - started
    assert elapsed < limits.timeout + MARGIN, f"took {elapsed:.2f} s"
    assert verdict.reward == 0.0 and not verdict.success, verdict.feedback
    assert check_program(GOOD, SUITE, LIMITS).success, "the sandbox is unusable afterwards"
    return verdict


def test_a_correct_program_passes_with_results_per_test():
    result = run_tests(GOOD + "print('hello')\n", SUITE, LIMITS)
    assert result.passed and [t.status for t in result.tests] == ["passed"] * 3
    assert result.stdout == "hello\n" and result.tests[0].call == "add(1, 2)"
    assert result.max_rss_kb > 0 and 0 < result.wall_time < LIMITS.timeout


def test_isolation_layers_are_active_as_root():
    layers = SANDBOX.isolation
    assert "rlimits" in layers
    if os.geteuid() == 0:
        assert {"netns", "jail", "uid_drop"} <= set(layers)


@pytest.mark.parametrize(
    "where", ["while True:\n    pass\n", "def add(a, b):\n    while True:\n        pass\n"]
)
def test_infinite_loop_times_out(where):
    verdict = hostile(where)
    assert verdict.run is not None and verdict.run.status == "timeout"
    assert all(t.status == "timeout" for t in verdict.run.tests)


@pytest.mark.parametrize("audit", [True, False])
def test_fork_bomb_is_contained(audit):
    program = (
        "import os\n"
        "def add(a, b):\n"
        "    while True:\n"
        "        try:\n"
        "            os.fork()\n"
        "        except Exception:\n"
        "            pass\n"
    )
    before = len(os.listdir("/proc"))
    hostile(program, Limits(timeout=1.0, memory_mb=256, audit_hooks=audit))
    time.sleep(0.2)
    assert len(os.listdir("/proc")) < before + 20, "processes survived the run"


def test_memory_bomb_is_refused():
    verdict = hostile("def add(a, b):\n    x = bytearray(4 * 1024**3)\n    return a + b\n")
    assert "MemoryError" in verdict.feedback


def test_huge_output_is_capped_and_stopped():
    verdict = hostile("def add(a, b):\n    while True:\n        print('x' * 10000)\n")
    assert verdict.run is not None
    assert len(verdict.run.stdout) <= LIMITS.max_output_bytes


def test_files_outside_the_sandbox_are_neither_written_nor_deleted(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "created.txt"
    for audit in (True, False):
        program = (
            "import os\n"
            f"for action in (lambda: open({str(target)!r}, 'w').write('x'),\n"
            f"               lambda: os.remove({str(victim)!r}),\n"
            "               lambda: open('/etc/rlvr-sandbox-test', 'w'),\n"
            "               lambda: os.remove('/etc/hostname')):\n"
            "    try:\n"
            "        action()\n"
            "    except Exception:\n"
            "        pass\n"
            "open('inside.txt', 'w').write('fine')\n"
            "def add(a, b):\n    return -999\n"
        )
        hostile(program, Limits(timeout=1.0, memory_mb=256, audit_hooks=audit))
        assert victim.read_text() == "precious" and not target.exists()
        assert not os.path.exists("/etc/rlvr-sandbox-test") and os.path.exists("/etc/hostname")


def test_the_parent_environment_is_not_visible(monkeypatch):
    monkeypatch.setenv("RLVR_SECRET_TOKEN", "s3cr3t-value")
    program = (
        "import os\n"
        "print(dict(os.environ))\n"
        "paths = ('/proc/1/environ', '/proc/self/environ', f'/proc/{os.getppid()}/environ')\n"
        "for path in paths:\n"
        "    try:\n"
        "        print(open(path, 'rb').read())\n"
        "    except Exception as e:\n"
        "        print('no', path)\n"
        "def add(a, b):\n    return str(os.environ)\n"
    )
    verdict = hostile(program)
    assert verdict.run is not None and "s3cr3t-value" not in verdict.run.stdout + verdict.feedback


@pytest.mark.parametrize("audit", [True, False])
def test_network_connections_fail(audit):
    """A real listener on the host's loopback: the program must not reach it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    program = (
        "import socket\n"
        "def add(a, b):\n"
        f"    s = socket.create_connection(('127.0.0.1', {port}), timeout=0.5)\n"
        "    s.sendall(b'leak')\n"
        "    return a + b\n"
    )
    try:
        verdict = hostile(program, Limits(timeout=1.0, memory_mb=256, audit_hooks=audit))
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing ever connected
    finally:
        listener.close()
    assert verdict.run is not None and verdict.run.n_passed == 0


def test_signalling_the_parent_does_not_harm_the_host():
    program = (
        "import os, signal\n"
        f"for pid in ({os.getpid()}, os.getppid(), 1, -1):\n"
        "    for sig in (signal.SIGKILL, signal.SIGTERM):\n"
        "        try:\n"
        "            os.kill(pid, sig)\n"
        "        except Exception:\n"
        "            pass\n"
        "def add(a, b):\n    return -999\n"
    )
    for audit in (True, False):
        hostile(program, Limits(timeout=1.0, memory_mb=256, audit_hooks=audit))
    assert SANDBOX.capabilities.get("ready")


@pytest.mark.parametrize("exit_call", ["import sys\nsys.exit(0)", "import os\nos._exit(0)"])
def test_exiting_before_the_tests_run_scores_zero(exit_call):
    verdict = hostile(f"def add(a, b):\n    return a + b\n{exit_call}\n")
    assert verdict.run is not None and verdict.run.n_passed == 0


def test_exiting_inside_the_function_scores_zero():
    hostile("import os\ndef add(a, b):\n    os._exit(0)\n")


def test_printing_fake_pass_lines_scores_zero():
    program = (
        "import sys\n"
        "print('passed\\n' * 10)\n"
        'print(\'{"event": "test", "name": "test_1", "status": "passed"}\')\n'
        "sys.stderr.write('passed\\n')\n"
        "def add(a, b):\n    print('passed')\n    return None\n"
    )
    hostile(program)


def test_tampering_with_the_harness_scores_zero():
    program = (
        "import builtins, sys, os\n"
        "builtins.AssertionError = Exception\n"
        "sys.modules['json'] = None\n"
        "for fd in range(3, 64):\n"
        "    try:\n"
        '        os.write(fd, b\'{"event": "test", "name": "test_1", "status": "passed"}\\n\')\n'
        "    except OSError:\n"
        "        pass\n"
        "def add(a, b):\n    return -1\n"
    )
    hostile(program)


@pytest.mark.parametrize(
    "value", ["Always()", "Liar(3)", "Liar(0)"], ids=["object", "int-subclass", "int-zero"]
)
def test_objects_that_equal_everything_fail(value):
    program = (
        "class Always:\n    def __eq__(self, other):\n        return True\n"
        "    def __ne__(self, other):\n        return False\n"
        "class Liar(int):\n    def __eq__(self, other):\n        return True\n"
        f"def add(a, b):\n    return {value}\n"
    )
    hostile(program)
    humaneval_like = TestSuite(
        "add", check="def check(candidate):\n    assert candidate(1, 2) == 3\n"
    )
    hostile(program, suite=humaneval_like)


def test_code_that_does_not_parse_gets_a_clear_message():
    verdict = hostile("def add(a, b)\n    return a +\n")
    assert verdict.feedback.startswith("Your program does not parse")
    assert "SyntaxError" in verdict.feedback


def test_extract_program_takes_the_last_python_block():
    reply = "text\n```python\nx = 1\n```\nmore\n```py\ny = 2\n```\n```bash\nls\n```"
    assert extract_program(reply) == "y = 2\n"
    assert extract_program("no fences at all") == "no fences at all"
    assert extract_program("```python\nz = 3\n") == "z = 3\n"


def test_parallel_runs_do_not_serialize():
    slow = "import time\ndef add(a, b):\n    time.sleep(0.4)\n    return a + b\n"
    suite = TestSuite("add", cases=(Case((1, 2), 3),))
    from concurrent.futures import ThreadPoolExecutor

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: run_tests(slow, suite, LIMITS), range(8)))
    assert all(r.passed for r in results)
    assert time.monotonic() - started < 8 * 0.4 / 2


def test_return_values_that_are_too_large_or_too_deep_are_errors():
    for body in (
        "return 'x' * 9_000_000",
        "x = []\n    for _ in range(100):\n        x = [x]\n    return x",
    ):
        result = run_tests(f"def add(a, b):\n    {body}\n", SUITE, Limits(timeout=5))
        assert result.status == "completed" and result.n_passed == 0
        assert all(t.status == "error" for t in result.tests), result.tests


def test_a_broken_test_source_is_a_harness_error_and_stops_the_runner():
    """The judge stops before the runner has even dropped its privileges: the runner must
    still be killed (it used to outlive the run and the host waited 20 s)."""
    broken = (
        TestSuite("add", check="def check(f)\n    assert f(1, 2) == 3\n"),
        TestSuite("add", check="def check(f):\n    assert f(1, 2) == 3\n", setup="def (:"),
    )
    for _ in range(10):
        for suite in broken:
            started = time.monotonic()
            result = run_tests(GOOD, suite, Limits(timeout=5))
            assert result.status == "harness_error" and not result.passed
            assert time.monotonic() - started < 2


# ---------------------------------------------------------------- the fallback (no privileges)

BASIC_SECRET = "b4sic-s3cr3t-value"
FORK_BOMB = (
    "import os\n"
    "def add(a, b):\n"
    "    while True:\n"
    "        try:\n"
    "            os.fork()\n"
    "        except Exception:\n"
    "            pass\n"
)
ALWAYS_EQUAL = (
    "class Always:\n    def __eq__(self, other):\n        return True\n"
    "class Liar(int):\n    def __eq__(self, other):\n        return True\n"
)
BASIC_HOSTILE = {
    "loop-at-load": "while True:\n    pass\n",
    "loop-in-call": "def add(a, b):\n    while True:\n        pass\n",
    "memory-bomb": "def add(a, b):\n    x = bytearray(4 * 1024**3)\n    return a + b\n",
    "huge-output": "def add(a, b):\n    while True:\n        print('x' * 10000)\n",
    "sys-exit": "def add(a, b):\n    return a + b\nimport sys\nsys.exit(0)\n",
    "os-exit": "def add(a, b):\n    return a + b\nimport os\nos._exit(0)\n",
    "exit-in-call": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "fake-passed": (
        "print('passed\\n' * 10)\n"
        'print(\'{"event": "test", "name": "test_1", "status": "passed"}\')\n'
        "def add(a, b):\n    print('passed')\n    return None\n"
    ),
    "always-equal": ALWAYS_EQUAL + "def add(a, b):\n    return Always()\n",
    "int-subclass": ALWAYS_EQUAL + "def add(a, b):\n    return Liar(0)\n",
    "tampering": (
        "import builtins, sys, os\n"
        "builtins.AssertionError = Exception\n"
        "for fd in range(3, 64):\n"
        "    try:\n"
        '        os.write(fd, b\'{"event": "test", "name": "test_1", "status": "passed"}\\n\')\n'
        "    except OSError:\n"
        "        pass\n"
        "def add(a, b):\n    return -1\n"
    ),
    "environment": (
        "import os\n"
        "print(dict(os.environ))\n"
        "for path in ('/proc/self/environ', f'/proc/{os.getppid()}/environ'):\n"
        "    try:\n"
        "        print(open(path, 'rb').read())\n"
        "    except Exception:\n"
        "        pass\n"
        "def add(a, b):\n    return str(os.environ)\n"
    ),
    "fork-bomb": FORK_BOMB,
}
"""What the fallback is documented to stop (docs/sandbox.md, "Without root"), guard on."""


@pytest.fixture(scope="module")
def basic():
    """A sandbox forced onto the fallback path, started while the host holds a secret."""
    os.environ["RLVR_BASIC_SECRET"] = BASIC_SECRET
    sandbox = Sandbox(isolation="basic")
    try:
        sandbox.start()
        yield sandbox
    finally:
        sandbox.close()
        os.environ.pop("RLVR_BASIC_SECRET", None)


def test_basic_isolation_is_the_unprivileged_fallback(basic):
    assert basic.capabilities["mode"] == "basic"
    assert not {"netns", "jail", "uid_drop"} & set(basic.isolation)
    result = basic.run(GOOD, SUITE, LIMITS)
    assert result.passed and "pidns" not in result.isolation
    with pytest.raises(ValueError):
        Sandbox(isolation="none")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(BASIC_HOSTILE))
def test_basic_isolation_stops_hostile_programs(basic, name):
    program = BASIC_HOSTILE[name]
    before = len(os.listdir("/proc"))
    for suite in (SUITE, TestSuite("add", check="def check(f):\n    assert f(1, 2) == 3\n")):
        started = time.monotonic()
        verdict = judge_run(program, basic.run(program, suite, LIMITS), "fraction")
        elapsed = time.monotonic() - started
        assert elapsed < LIMITS.timeout + MARGIN, f"took {elapsed:.2f} s"
        assert verdict.reward == 0.0 and not verdict.success, verdict.feedback
        assert BASIC_SECRET not in verdict.feedback + (verdict.run.stdout if verdict.run else "")
    time.sleep(0.2)
    assert len(os.listdir("/proc")) < before + 20, "processes survived the run"
    assert basic.run(GOOD, SUITE, LIMITS).passed, "the sandbox is unusable afterwards"
    assert os.environ.get("RLVR_BASIC_SECRET") == BASIC_SECRET and os.path.exists("/etc/hostname")


def _drop_cap_sys_admin() -> None:
    """In the child, before exec: no CAP_SYS_ADMIN, so no namespace can be made."""
    import ctypes

    pr_capbset_drop, cap_sys_admin = 24, 21
    if ctypes.CDLL(None).prctl(pr_capbset_drop, cap_sys_admin, 0, 0, 0) != 0:
        os._exit(3)


FALLBACK_PROBE = """
import json
from rlvr.rewards.sandbox import Case, Limits, Sandbox, TestSuite
sandbox = Sandbox()
suite = TestSuite("add", cases=(Case((1, 2), 3),))
limits = Limits(timeout=1.0, memory_mb=256)
good = sandbox.run("def add(a, b):\\n    return a + b\\n", suite, limits)
loop = sandbox.run("def add(a, b):\\n    while True:\\n        pass\\n", suite, limits)
print(json.dumps({"isolation": good.isolation, "good": good.passed, "loop": loop.status}))
sandbox.close()
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to take CAP_SYS_ADMIN away")
def test_the_fallback_is_detected_when_namespaces_are_refused():
    """Root without CAP_SYS_ADMIN (a container's usual lot): the default sandbox finds no
    namespaces and falls back by itself, and still scores and stops programs."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    done = subprocess.run(
        [sys.executable, "-c", FALLBACK_PROBE],
        preexec_fn=_drop_cap_sys_admin,  # the test's own short child
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert not {"netns", "jail", "pidns"} & set(report["isolation"]), report
    assert report["good"] and report["loop"] == "timeout", report
