"""Run untrusted Python against hidden tests, isolated, with hard limits (see docs/sandbox.md).

::

    from rlvr.rewards.sandbox import Case, Limits, TestSuite, run_tests

    suite = TestSuite("add", cases=(Case((1, 2), 3), Case((-1, 1), 0)))
    result = run_tests("def add(a, b):\\n    return a + b\\n", suite, Limits(timeout=2))
    result.passed, [t.status for t in result.tests]    # True, ['passed', 'passed']

Every run happens in fresh processes forked from a clean zygote interpreter
(:mod:`rlvr.rewards._sandbox_zygote`): the program runs in one process, the tests in another,
and values cross between them as plain data only (:mod:`rlvr.rewards._sandbox_child`,
:mod:`rlvr.rewards._sandbox_codec`).
:class:`Sandbox` is thread-safe: any number of threads may call :meth:`Sandbox.run` at once,
and runs proceed in parallel. A run that cannot be scored (the zygote died twice) raises
:class:`SandboxError`; it is never reported as a failed test.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import marshal
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from rlvr.rewards._sandbox_child import check_plan
from rlvr.rewards._sandbox_codec import encode

TestStatus = Literal["passed", "failed", "error", "timeout"]
RunStatus = Literal["completed", "load_error", "timeout", "output_limit", "harness_error"]
IsolationMode = Literal["full", "basic"]
ISOLATION_MODES: tuple[str, ...] = ("full", "basic")

HOST_GRACE = 15.0
"""Seconds past a run's own deadline after which the host gives up on it (SandboxError)."""
STOP_GRACE = 1.0
"""Seconds the zygote gets to clean up after its socket closes, before it is killed."""
TMPFS_MB = 256
"""Size of the tmpfs that holds every run's working directory (when the jail is available)."""

_HERE = Path(__file__).resolve().parent
_BOOT = (
    "import runpy, sys; sys.argv = sys.argv[1:]; sys.path[:] = [p for p in sys.path if p]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


class SandboxError(RuntimeError):
    """The sandbox itself failed; the submission could not be scored."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run."""

    timeout: float = 5.0
    """Wall-clock seconds for the whole run (loading the program and every test)."""
    memory_mb: int = 512
    """Address-space limit of the program's process (RLIMIT_AS)."""
    max_processes: int = 8
    """Processes and threads the run's uid may have (RLIMIT_NPROC; the supervisor counts)."""
    max_file_mb: int = 16
    """Largest file the program may write (RLIMIT_FSIZE)."""
    max_open_files: int = 64
    """Open file descriptors (RLIMIT_NOFILE)."""
    max_output_bytes: int = 16_384
    """Bytes kept of stdout and of stderr; a program that writes 64 times more is stopped."""
    audit_hooks: bool = True
    """Install the in-process guard (no sockets, processes, signals, ctypes, outside writes)."""

    def __post_init__(self) -> None:
        if not 0 < self.timeout <= 3600:
            raise ValueError(f"timeout must be in (0, 3600] seconds, got {self.timeout}")
        for name in ("memory_mb", "max_processes", "max_file_mb", "max_open_files"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.memory_mb < 64:
            raise ValueError(f"memory_mb must be >= 64 (Python needs it), got {self.memory_mb}")
        if self.max_open_files < 16:
            raise ValueError(f"max_open_files must be >= 16, got {self.max_open_files}")
        if self.max_output_bytes < 0:
            raise ValueError(f"max_output_bytes must be >= 0, got {self.max_output_bytes}")


@dataclass(frozen=True)
class Case:
    """One call-and-compare test: ``entry_point(*args)`` must equal ``expected``, same types."""

    args: tuple[Any, ...]
    expected: Any


@dataclass(frozen=True)
class TestSuite:
    """The hidden tests of a task: either ``cases`` or a HumanEval ``check`` source."""

    __test__ = False  # not a pytest class

    entry_point: str
    """Name of the function the program must define."""
    cases: tuple[Case, ...] = ()
    """Call-and-compare tests (generated tasks)."""
    check: str | None = None
    """Source defining ``check(candidate)`` (HumanEval); each statement using it is a test."""
    setup: str = ""
    """Trusted source run in the judge before ``check`` (the HumanEval prompt's helpers)."""

    def __post_init__(self) -> None:
        if not self.entry_point.isidentifier():
            raise ValueError(f"entry_point must be an identifier, got {self.entry_point!r}")
        if bool(self.cases) == (self.check is not None):
            raise ValueError("a TestSuite needs exactly one of cases and check")

    def spec(self) -> dict[str, Any]:
        """What the judge reads (sent by :mod:`marshal`: the check is compiled here, once)."""
        if self.check is not None:
            plan = _cached_plan(self.check, self.setup)
            return {"entry_point": self.entry_point, "kind": "check", "plan": plan}
        cases = [{"args": encode(list(c.args)), "expected": encode(c.expected)} for c in self.cases]
        return {"entry_point": self.entry_point, "kind": "cases", "cases": cases}


@functools.lru_cache(maxsize=4096)
def _cached_plan(test: str, setup: str) -> dict[str, Any]:
    """:func:`check_plan`, compiled once per distinct test source (code objects are
    immutable; the dict is only ever marshalled)."""
    return check_plan(test, setup)


@dataclass(frozen=True)
class TestResult:
    """The verdict on one test."""

    __test__ = False  # not a pytest class

    name: str
    status: TestStatus
    message: str = ""
    """The failing assertion, the traceback, or why the test did not run."""
    call: str = ""
    """The last call of the entry point, e.g. ``add(1, 2)``."""
    source: str = ""
    """The test statement (HumanEval tests)."""
    expected: str = ""
    actual: str = ""
    time: float = 0.0
    """Seconds the test took (wall, including the round trip between processes)."""


@dataclass(frozen=True)
class RunResult:
    """Everything one run produced."""

    status: RunStatus
    tests: tuple[TestResult, ...]
    load_error: str = ""
    """Why the program did not load (syntax error, exception, exit, missing function)."""
    load_error_kind: str = ""
    stdout: str = ""
    stderr: str = ""
    wall_time: float = 0.0
    cpu_time: float = 0.0
    """CPU seconds of the program's process."""
    max_rss_kb: int = 0
    """Peak resident memory of the program's process, in KiB."""
    judge_cpu_time: float = 0.0
    """CPU seconds of the run's supervisor, which also runs the tests."""
    isolation: tuple[str, ...] = field(default=())
    """The isolation layers that were active (see docs/sandbox.md)."""

    @property
    def n_passed(self) -> int:
        return sum(test.status == "passed" for test in self.tests)

    @property
    def passed(self) -> bool:
        """Every test passed (and there was at least one)."""
        return self.status == "completed" and bool(self.tests) and self.n_passed == len(self.tests)


class Sandbox:
    """A pool-free executor: one zygote, forking fresh processes per run (thread-safe).

    ``isolation="full"`` (the default) uses every layer the machine allows (as root:
    network and mount namespaces, a read-only jail, a uid per run, a PID namespace per run).
    ``isolation="basic"`` forces the fallback that a non-root host gets: rlimits, a fresh
    process in its own session, a clean environment, closed descriptors, a separate judge
    and the in-process guard, and nothing that needs privileges (the programs then run as
    the host's user: under root, as root). It exists to test that path (docs/sandbox.md).
    """

    def __init__(self, isolation: IsolationMode = "full") -> None:
        if isolation not in ISOLATION_MODES:
            raise ValueError(f"isolation must be one of {ISOLATION_MODES}, got {isolation!r}")
        self.mode: IsolationMode = isolation
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._socket: socket.socket | None = None
        self._owner = 0
        self._log: Any = None
        self.capabilities: dict[str, Any] = {}

    @property
    def isolation(self) -> tuple[str, ...]:
        """The layers this machine allows (starts the zygote if needed)."""
        self.start()
        return self._layers()

    def _layers(self) -> tuple[str, ...]:
        always = ("fresh process", "rlimits", "new session", "clean env", "closed fds")
        extra = [name for name in ("netns", "jail", "uid_drop") if self.capabilities.get(name)]
        return always + tuple(extra)

    def start(self) -> None:
        """Start the zygote now (otherwise the first run does)."""
        with self._lock:
            self._ensure()

    def _ensure(self) -> socket.socket:
        if self._socket is not None and self._owner == os.getpid() and self._alive():
            return self._socket
        self._stop()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        log = self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in _stop
        command = [sys.executable, "-S", "-s", "-B", "-c", _BOOT]
        command += [str(_HERE / "_sandbox_zygote.py"), str(child.fileno())]
        command += [str(_HERE / "_sandbox_child.py"), str(TMPFS_MB), self.mode]
        env = {"PYTHONHASHSEED": "0", "LC_ALL": "C.UTF-8"}
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
            cwd="/",
            pass_fds=(child.fileno(),),
            start_new_session=True,
        )
        child.close()
        parent.settimeout(60)
        try:
            hello = parent.recv(4096)
        except OSError:
            hello = b""
        parent.settimeout(None)
        if not hello:
            log.seek(0)
            detail = log.read().decode(errors="replace")[-2000:]
            self._stop()
            raise SandboxError(f"the sandbox zygote did not start: {detail}")
        self.capabilities = json.loads(hello)
        self._socket, self._owner = parent, os.getpid()
        return parent

    def _alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _stop(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._process is not None and self._owner == os.getpid():
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(STOP_GRACE)  # it removes its working directories on EOF
            with contextlib.suppress(OSError):
                os.killpg(self._process.pid, signal.SIGKILL)  # and what is left of its runs
            self._process.wait()
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        """Stop the zygote (a later run starts a new one)."""
        with self._lock:
            self._stop()

    def _dispatch(self, fds: list[int]) -> None:
        with self._lock:
            for attempt in (0, 1):
                sock = self._ensure()
                try:
                    socket.send_fds(sock, [b"r"], fds)
                    return
                except OSError:
                    if attempt:
                        raise
                    self._stop()

    def run(self, program: str, suite: TestSuite, limits: Limits | None = None) -> RunResult:
        """Run ``program`` against ``suite`` under ``limits``; never raises for bad programs."""
        limits = limits or Limits()
        request = {"program": program, "entry_point": suite.entry_point, "limits": _fields(limits)}
        payloads = [marshal.dumps(request), marshal.dumps(suite.spec())]
        pipes = [os.pipe() for _ in range(3)]
        (req_r, req_w), (tests_r, tests_w), (res_r, res_w) = pipes
        try:
            self._dispatch([req_r, tests_r, res_w])
        except OSError as exc:
            for fd in (req_r, req_w, tests_r, tests_w, res_r, res_w):
                os.close(fd)
            raise SandboxError(f"could not reach the sandbox zygote: {exc}") from exc
        for fd in (req_r, tests_r, res_w):
            os.close(fd)
        still_open = [req_w, tests_w, res_r]
        try:
            for fd, data in ((req_w, payloads[0]), (tests_w, payloads[1])):
                _write_all(fd, data)
                still_open.remove(fd)
                os.close(fd)
            raw = _read_until_eof(res_r, time.monotonic() + limits.timeout + HOST_GRACE)
        finally:
            for fd in still_open:
                os.close(fd)
        if not raw:
            raise SandboxError("the run's supervisor died without a result")
        return self._result(json.loads(raw), limits)

    def _result(self, raw: dict[str, Any], limits: Limits) -> RunResult:
        layers = self._layers() + (("pidns",) if raw["pidns"] else ())
        return build_result(raw, limits, layers)


@functools.lru_cache(maxsize=256)
def _fields(limits: Limits) -> dict[str, Any]:
    """``asdict(limits)``, once per distinct :class:`Limits` (it is frozen)."""
    return asdict(limits)


def build_result(raw: dict[str, Any], limits: Limits, isolation: tuple[str, ...]) -> RunResult:
    """Turn the supervisor's JSON into a :class:`RunResult`, filling tests that never ran."""
    names: list[str] = []
    verdicts: dict[str, TestResult] = {}
    load: dict[str, str] | None = None
    harness = ""
    for event in raw["events"]:
        kind = event.get("event")
        if kind == "plan":
            names = [str(n) for n in event["tests"]]
        elif kind == "load":
            load = event.get("error")
        elif kind == "harness_error":
            harness = str(event.get("message", ""))
        elif kind == "test":
            fields = {k: event[k] for k in TestResult.__dataclass_fields__ if k in event}
            verdicts[event["name"]] = TestResult(**fields)
    status: RunStatus = raw["status"]
    if status == "completed" and harness:
        status = "harness_error"
    elif status == "completed" and load:
        status = "load_error"
    missing_status: TestStatus = "timeout" if status == "timeout" else "error"
    why = {
        "timeout": f"not run: the time limit of {limits.timeout:g} s was reached",
        "output_limit": f"not run: the program wrote more than {64 * limits.max_output_bytes} "
        "bytes of output and was stopped",
    }.get(status, f"not run: {harness or 'the test harness stopped'}")
    tests = tuple(verdicts.get(n) or TestResult(n, missing_status, why) for n in names)
    return RunResult(
        status=status,
        tests=tests,
        load_error=(load or {}).get("message", ""),
        load_error_kind=(load or {}).get("kind", ""),
        stdout=raw["stdout"],
        stderr=raw["stderr"],
        wall_time=float(raw["wall_time"]),
        cpu_time=float(raw["cpu_time"]),
        max_rss_kb=int(raw["max_rss_kb"]),
        judge_cpu_time=float(raw["judge_cpu_time"]),
        isolation=isolation,
    )


def _write_all(fd: int, data: bytes) -> None:
    try:
        while data:
            data = data[os.write(fd, data) :]
    except BrokenPipeError as exc:
        raise SandboxError("the run's supervisor closed its input") from exc


def _read_until_eof(fd: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    while True:
        wait = deadline - time.monotonic()
        if wait <= 0 or not select.select([fd], [], [], wait)[0]:
            raise SandboxError("the sandbox did not answer in time")
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


SANDBOX = Sandbox()
"""The process-wide executor that :func:`run_tests` uses."""
atexit.register(SANDBOX.close)


def run_tests(program: str, suite: TestSuite, limits: Limits | None = None) -> RunResult:
    """Run ``program`` against ``suite`` in the shared :data:`SANDBOX`."""
    return SANDBOX.run(program, suite, limits)


__all__ = [
    "ISOLATION_MODES",
    "SANDBOX",
    "Case",
    "IsolationMode",
    "Limits",
    "RunResult",
    "Sandbox",
    "SandboxError",
    "TestResult",
    "TestSuite",
    "run_tests",
]
