"""What runs inside the sandbox: the judge and the runner (stdlib only).

The sandbox's zygote loads this file by path (and :mod:`._sandbox_codec` before it).
Every run has two processes, forked by its supervisor:

* the **runner** holds the untrusted program and nothing else. It executes the program, finds
  the entry point and then answers calls: it reads arguments from one pipe and writes the
  return value (or the exception) to another. It never sees the tests.
* the **judge** holds the tests and never runs untrusted code. It calls the entry point
  through :class:`Candidate`, a proxy that sends the arguments to the runner and decodes the
  answer into fresh builtin objects (``int``, ``str``, ``list``...). The assertions and the
  comparisons run on those objects, in the judge, so an object whose ``__eq__`` always
  returns True never reaches them, and nothing the program does can edit a test or forge a
  verdict: the verdicts travel judge -> supervisor -> host on pipes the runner does not hold.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import linecache
import math
import os
import random
import sys
import time
import traceback
from typing import Any

try:  # on the host (type checkers, tests)
    from rlvr.rewards._sandbox_codec import (
        MAX_TEXT,
        ChannelClosed,
        ChannelTimeout,
        NotPlainData,
        OutputLimit,
        Waiter,
        decode,
        encode,
        receive,
        send,
        short,
        show,
    )
except ImportError:  # in the zygote, which loads the codec by path under this name
    from _sandbox_codec import (
        MAX_TEXT,
        ChannelClosed,
        ChannelTimeout,
        NotPlainData,
        OutputLimit,
        Waiter,
        decode,
        encode,
        receive,
        send,
        short,
        show,
    )

# ---------------------------------------------------------------- the runner (untrusted side)

_BLOCKED_EVENTS = (
    "socket.",
    "ctypes.",
    "subprocess.",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.system",
    "os.kill",
    "os.killpg",
    "os.fork",
    "os.forkpty",
    "signal.pthread_kill",
    "pty.",
    "os.symlink",
    "os.link",
)
_PATH_EVENTS = (
    "os.remove",
    "os.rmdir",
    "os.rename",
    "os.mkdir",
    "os.chmod",
    "os.chown",
    "os.truncate",
    "os.utime",
    "shutil.rmtree",
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def install_guard(workdir: str) -> None:
    """Refuse network, processes, signals, native code and writes outside ``workdir``.

    An audit hook (PEP 578) cannot be removed from Python code; it is one layer among
    several (see docs/sandbox.md), not the boundary.
    """
    root = os.path.realpath(workdir) + os.sep

    def inside(path: Any) -> bool:
        if isinstance(path, int):
            return True
        return (os.path.realpath(os.fsdecode(path)) + os.sep).startswith(root)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event.startswith(_BLOCKED_EVENTS):
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = args
            writes = any(c in mode for c in "wax+") if isinstance(mode, str) else False
            if isinstance(flags, int) and flags > 0:
                writes = writes or bool(flags & _WRITE_FLAGS)
            if writes and not inside(path):
                raise PermissionError(f"sandbox: writing {path!r} is not allowed")
        elif (
            event in _PATH_EVENTS
            and args
            and not all(inside(a) for a in args[:2] if isinstance(a, (str, bytes, os.PathLike)))
        ):
            raise PermissionError(f"sandbox: {event} outside the working directory")

    sys.addaudithook(hook)
    import socket

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError("sandbox: network access is not allowed")

    socket.socket = no_network  # type: ignore[assignment,misc]
    socket.create_connection = no_network
    socket.socketpair = no_network


def _solution_trace(exc: BaseException) -> str:
    """The traceback limited to the frames of the submitted program."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<solution>"]
    lines = traceback.format_list(frames) if frames else []
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return short("Traceback (most recent call last):\n" + "".join(lines) + detail)


def _load(program: str, entry_point: str) -> tuple[Any, dict[str, str] | None]:
    """Run the program; its entry point, or a load error."""
    lines = program.splitlines(keepends=True)
    linecache.cache["<solution>"] = (len(program), None, lines, "<solution>")
    namespace: dict[str, Any] = {"__name__": "solution", "__builtins__": builtins}
    try:
        code = compile(program, "<solution>", "exec")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return None, {"kind": "syntax", "message": short(detail)}
    try:
        exec(code, namespace)
    except SystemExit as exc:
        message = f"the program called exit({exc.code!r}) while loading"
        return None, {"kind": "exit", "message": message}
    except BaseException as exc:
        return None, {"kind": "exception", "message": _solution_trace(exc)}
    function = namespace.get(entry_point)
    if not callable(function):
        message = f"the program defines no function named {entry_point!r}"
        return None, {"kind": "missing", "message": message}
    return function, None


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def runner_main(program: str, entry_point: str, calls: int, answers: int) -> None:
    """Load the program, then answer calls until the judge closes the pipe."""
    function, error = _load(program, entry_point)
    _flush()
    send(answers, {"load_error": error} if error else {"ready": True})
    if error:
        return
    while True:
        try:
            request = receive(calls)
        except (ChannelClosed, ValueError):
            return
        try:
            args, kwargs = decode(request["args"]), decode(request["kwargs"])
            reply: dict[str, Any] = {"ok": encode(function(*args, **kwargs))}
        except NotPlainData as exc:
            reply = {"error": {"type": "TypeError", "message": f"the return value: {exc}"}}
        except BaseException as exc:
            message = short(f"{type(exc).__name__}: {show(exc)[:MAX_TEXT]}")
            reply = {
                "error": {"type": type(exc).__name__, "message": message},
                "trace": _solution_trace(exc),
            }
        _flush()
        try:
            send(answers, reply)
        except NotPlainData as exc:  # a return value too large to send
            send(answers, {"error": {"type": "ValueError", "message": f"the return value: {exc}"}})


# ---------------------------------------------------------------- the judge (trusted side)


class CandidateError(Exception):
    """The program raised while answering a call (tests may catch it, as with a real call)."""

    def __init__(self, message: str, trace: str) -> None:
        super().__init__(message)
        self.trace = trace


class CandidateGone(BaseException):
    """The program died or hit the deadline; no test can continue (not catchable by tests)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


class Candidate:
    """The judge's stand-in for the entry point: calls it in the runner, over pipes."""

    def __init__(
        self, calls: int, answers: int, deadline: float, name: str, waiter: Waiter
    ) -> None:
        self.calls, self.answers, self.deadline, self.name = calls, answers, deadline, name
        self.waiter = waiter
        self.last_call = ""
        self.last_result = ""
        self.gone: CandidateGone | None = None

    def expect_ready(self) -> dict[str, str] | None:
        """Wait for the program to load; its load error, if any."""
        reply = self._receive()
        return reply.get("load_error") if isinstance(reply, dict) else None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        shown = [show(a) for a in args] + [f"{k}={show(v)}" for k, v in kwargs.items()]
        self.last_call, self.last_result = f"{self.name}({', '.join(shown)})", ""
        if self.gone is not None:
            raise self.gone
        with contextlib.suppress(OSError):  # a runner that is gone: _receive says how
            send(self.calls, {"args": encode(list(args)), "kwargs": encode(dict(kwargs))})
        reply = self._receive()
        if "ok" in reply:
            value = decode(reply["ok"])
            self.last_result = show(value)
            return value
        error = reply.get("error") or {}
        self.last_result = f"raised {error.get('message', '?')}"
        raise CandidateError(str(error.get("message", "?")), str(reply.get("trace", "")))

    def _receive(self) -> Any:
        try:
            reply = receive(self.answers, self.deadline, self.waiter)
            if not isinstance(reply, dict):
                raise ValueError("not a message")
            return reply
        except ChannelTimeout:
            self.gone = CandidateGone("timeout", "the time limit was reached")
        except OutputLimit:
            self.gone = CandidateGone("error", "the program wrote too much output and was stopped")
        except (ChannelClosed, ValueError, NotPlainData) as exc:
            self.gone = CandidateGone("error", f"the program stopped answering ({exc})")
        raise self.gone


def _report(events: list[dict[str, Any]], event: dict[str, Any]) -> None:
    events.append(event)


def _values_match(actual: Any, expected: Any) -> bool:
    """Equality that also demands the same types (``True`` is not ``1``; floats to 1e-9)."""
    if type(actual) is not type(expected):
        return False
    if type(expected) is float:
        both_nan = math.isnan(actual) and math.isnan(expected)
        return both_nan or math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9)
    if type(expected) in (list, tuple):
        return len(actual) == len(expected) and all(
            _values_match(a, e) for a, e in zip(actual, expected, strict=False)
        )
    if type(expected) is dict:
        return actual.keys() == expected.keys() and all(
            _values_match(actual[k], v) for k, v in expected.items()
        )
    return bool(actual == expected)


def _wait_ready(candidate: Candidate, report: list[dict[str, Any]]) -> dict[str, str] | None:
    """The program's load error (with the status its tests get), or ``None`` once it is ready."""
    try:
        error = candidate.expect_ready()
    except CandidateGone as exc:
        error = {"kind": exc.status, "message": f"the program did not load: {exc}"}
        _report(report, {"event": "load", "error": error})
        return {"status": exc.status, "message": error["message"]}
    _report(report, {"event": "load", "error": error})
    if error is not None:
        return {"status": "error", "message": str(error.get("message", "did not load"))}
    return None


def _outcome(name: str, status: str, message: str = "", **extra: Any) -> dict[str, Any]:
    return {"event": "test", "name": name, "status": status, "message": short(message), **extra}


def _run_cases(spec: dict[str, Any], candidate: Candidate, report: list[dict[str, Any]]) -> None:
    cases = spec["cases"]
    names = [f"test_{i + 1}" for i in range(len(cases))]
    _report(report, {"event": "plan", "tests": names})
    load_error = _wait_ready(candidate, report)
    for name, case in zip(names, cases, strict=False):
        args, expected = decode(case["args"]), decode(case["expected"])
        started = time.perf_counter()
        extra: dict[str, Any] = {"expected": show(expected)}
        try:
            if load_error:
                raise CandidateGone(load_error.get("status", "error"), load_error["message"])
            actual = candidate(*args)
            extra.update(actual=show(actual), call=candidate.last_call)
            ok = _values_match(actual, expected)
            status, message = ("passed", "") if ok else ("failed", "wrong return value")
        except CandidateError as exc:
            extra.update(call=candidate.last_call, actual=candidate.last_result)
            status, message = "error", exc.trace or str(exc)
        except CandidateGone as exc:
            extra.update(call=candidate.last_call)
            status, message = exc.status, str(exc)
        extra["time"] = time.perf_counter() - started
        _report(report, _outcome(name, status, message, **extra))


def _check_statements(tree: ast.Module) -> tuple[str, list[ast.stmt]]:
    """The parameter name and the body of ``def check(candidate)`` in the test module."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "check" and node.args.args:
            return node.args.args[0].arg, list(node.body)
    raise ValueError("the test source defines no check(candidate) function")


def _mentions(node: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(node))


def _module_code(body: list[ast.stmt], filename: str) -> Any:
    return compile(ast.Module(body=body, type_ignores=[]), filename, "exec")


def check_plan(test: str, setup: str = "") -> dict[str, Any]:
    """Compile a HumanEval ``check`` source into the judge's plan (trusted; on the host).

    The plan holds code objects (it travels by :mod:`marshal`, host -> judge only): the
    optional ``setup`` (the prompt's helpers), the module-level rest of the test source,
    and one step per statement of ``check``, each a test (``name``) when it uses the
    candidate. A source that does not compile gives ``{"error": ...}`` (a harness error).
    """
    try:
        tree = ast.parse(test)
        param, body = _check_statements(tree)
        rest = [n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name == "check")]
        rest_code = _module_code(rest, "<test>")
        steps: list[tuple[Any, str, str]] = []
        names: list[str] = []
        lines = test.splitlines()
        for stmt in body:
            end = stmt.end_lineno or stmt.lineno
            source = "\n".join(lines[stmt.lineno - 1 : end]).strip()
            name = f"test_{len(names) + 1}" if _mentions(stmt, param) else ""
            names += [name] if name else []
            steps.append((_module_code([stmt], "<test>"), name, short(source, 600)))
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    plan: dict[str, Any] = {"param": param, "rest": rest_code, "steps": steps, "names": names}
    try:
        plan["setup"] = compile(setup, "<prompt>", "exec") if setup else None
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        plan["setup"], plan["setup_error"] = None, f"{type(exc).__name__}: {exc}"
    return plan


def _run_check(spec: dict[str, Any], candidate: Candidate, report: list[dict[str, Any]]) -> None:
    """HumanEval-style tests: every statement of ``check`` that uses the candidate is a test."""
    plan = spec["plan"]
    if "error" in plan:
        raise ValueError(plan["error"])
    _report(report, {"event": "plan", "tests": list(plan["names"])})
    if "setup_error" in plan:
        raise ValueError(plan["setup_error"])
    namespace: dict[str, Any] = {"__name__": "__judge__", "__builtins__": builtins}
    if plan["setup"] is not None:
        exec(plan["setup"], namespace)
    exec(plan["rest"], namespace)
    namespace[plan["param"]] = namespace[spec["entry_point"]] = candidate
    load_error = _wait_ready(candidate, report)
    broken = ""
    for code, name, source in plan["steps"]:
        if not name:
            try:
                exec(code, namespace)
            except Exception as exc:
                broken = broken or f"test setup failed: {type(exc).__name__}: {exc}"
            continue
        started = time.perf_counter()
        extra: dict[str, Any] = {"source": source}
        try:
            if load_error:
                raise CandidateGone(load_error.get("status", "error"), load_error["message"])
            if broken:
                raise CandidateGone("error", broken)
            exec(code, namespace)
            status, message = "passed", ""
        except AssertionError as exc:
            status, message = "failed", f"assertion failed{': ' + str(exc) if str(exc) else ''}"
        except CandidateError as exc:
            status, message = "error", exc.trace or str(exc)
        except CandidateGone as exc:
            status, message = exc.status, str(exc)
        except Exception as exc:
            status, message = "error", f"{type(exc).__name__}: {exc}"
        extra.update(call=candidate.last_call, actual=candidate.last_result)
        extra["time"] = time.perf_counter() - started
        _report(report, _outcome(name, status, message, **extra))


def judge_main(
    spec: dict[str, Any], calls: int, answers: int, waiter: Waiter, deadline: float
) -> tuple[list[dict[str, Any]], str | None]:
    """Run every test of ``spec`` against the runner.

    Returns the events (plan, load, verdicts) and, if the runner was lost, why
    (``"timeout"`` or ``"error"``).

    A ``SIGALRM`` at the deadline stops test code that loops by itself (it raises
    :class:`CandidateGone`, which no test can catch).
    """
    import signal

    events: list[dict[str, Any]] = []
    random.seed(0)
    candidate = Candidate(calls, answers, deadline, spec["entry_point"], waiter)

    def on_alarm(signum: int, frame: Any) -> None:
        candidate.gone = candidate.gone or CandidateGone("timeout", "the time limit was reached")
        raise candidate.gone

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 0.001))
    try:
        if spec["kind"] == "cases":
            _run_cases(spec, candidate, events)
        else:
            _run_check(spec, candidate, events)
    except CandidateGone as exc:
        _report(events, {"event": "stopped", "status": exc.status, "message": str(exc)})
    except Exception as exc:
        message = short(f"{type(exc).__name__}: {exc}")
        _report(events, {"event": "harness_error", "message": message})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return events, (candidate.gone.status if candidate.gone else None)
