"""The parent side of the symbolic math check: a persistent, killable math-verify worker.

math-verify's own timeouts use ``signal.alarm``, which works only in the main thread, so we
switch them off and enforce a hard deadline from outside instead: math-verify runs in one
child process (started lazily, shared by all threads through a lock), and a check that
overruns its deadline gets the child killed, reaped and replaced. The replacement starts at
once in the background, so the next check finds it (almost) ready.

The child is a fresh interpreter running ``_math_worker.py`` by path (``subprocess`` with
pipes, i.e. a spawn: no fork of this possibly threaded process). We do not use
``multiprocessing``'s spawn/forkserver contexts because they re-import the parent's
``__main__`` in the child, which re-runs any script without a ``__main__`` guard.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

WORKER_SCRIPT = Path(__file__).with_name("_math_worker.py")
"""The script the child runs."""

STARTUP_TIMEOUT = 60.0
"""Seconds a fresh worker may take to import math-verify (not charged to any check)."""

QUEUE_WAIT_FACTOR = 4.0
"""A check waits at most this many times its own timeout for a worker busy with others."""


class VerifierError(RuntimeError):
    """The symbolic worker failed (could not start, or died); the check cannot be scored."""


_BOOTSTRAP = (
    "import json, runpy, sys; sys.path[:] = json.loads(sys.argv[1]); "
    "runpy.run_path(sys.argv[2], run_name='__main__')"
)
"""Runs the worker file with the parent's ``sys.path``, minus the file's own folder: that
folder holds ``math.py``, which must not shadow the standard library's ``math``."""


def _worker_command() -> list[str]:
    """The child's command line."""
    here = WORKER_SCRIPT.parent.resolve()
    path = [p for p in sys.path if p and Path(p).resolve() != here]
    return [sys.executable, "-u", "-c", _BOOTSTRAP, json.dumps(path), str(WORKER_SCRIPT)]


class _Process:
    """One running worker: the child, and a thread that moves its output lines to a queue."""

    def __init__(self) -> None:
        self.popen = subprocess.Popen(
            _worker_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            encoding="ascii",
            errors="backslashreplace",
            close_fds=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.ready = False
        assert self.popen.stdout is not None
        reader = threading.Thread(target=self._pump, args=(self.popen.stdout,), daemon=True)
        reader.start()

    def _pump(self, stream: IO[str]) -> None:
        """Forward lines until end of file, then a ``None`` sentinel."""
        try:
            for line in stream:
                self.lines.put(line)
        except (OSError, ValueError):
            pass
        self.lines.put(None)

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next message, or ``None`` on timeout; raises :class:`VerifierError` on EOF."""
        try:
            line = self.lines.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None
        if line is None:
            raise VerifierError(f"math worker exited (code {self.popen.poll()})")
        try:
            message: dict[str, Any] = json.loads(line)
        except ValueError as exc:
            raise VerifierError(f"math worker sent a malformed line: {line[:80]!r}") from exc
        return message

    def send(self, message: dict[str, Any]) -> None:
        """Write one request line; raises :class:`VerifierError` if the pipe is gone."""
        assert self.popen.stdin is not None
        try:
            self.popen.stdin.write(json.dumps(message, ensure_ascii=True) + "\n")
            self.popen.stdin.flush()
        except (OSError, ValueError) as exc:
            raise VerifierError(f"math worker pipe closed: {exc}") from exc

    def wait_ready(self) -> None:
        """Block until the child has imported math-verify."""
        if not self.ready:
            message = self.receive(STARTUP_TIMEOUT)
            if not message or not message.get("ready"):
                raise VerifierError(f"math worker did not start within {STARTUP_TIMEOUT} s")
            self.ready = True

    def kill(self) -> None:
        """Kill and reap the child (no zombie), closing our ends of the pipes."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()
        for stream in (self.popen.stdin, self.popen.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


def _spawn() -> _Process:
    """Start a worker; raises :class:`VerifierError` if the OS refuses."""
    try:
        return _Process()
    except OSError as exc:
        raise VerifierError(f"could not start the math worker: {exc}") from exc


class SymbolicWorker:
    """A lazily started math-verify worker shared by all threads, with hard deadlines."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: _Process | None = None
        self._next_id = 0
        self.restarts = 0
        """How many times a worker was killed and replaced (for tests and logs)."""

    def start(self, wait: bool = False) -> None:
        """Start the worker if none is running; ``wait`` blocks until it is ready."""
        with self._lock:
            process = self._ensure()
            if wait:
                process.wait_ready()

    def _ensure(self) -> _Process:
        """The running worker, started (or restarted, if it died) as needed."""
        if self._process is None or self._process.popen.poll() is not None:
            if self._process is not None:
                self._process.kill()
            self._process = _spawn()
        return self._process

    def check(self, pred: str, gold: str, timeout: float) -> tuple[bool | None, str]:
        """Run math-verify on one pair; ``(None, why)`` if it did not finish within ``timeout``.

        The ``timeout`` counts from when the request reaches a ready worker. Waiting for a
        worker that is busy with other threads' checks is bounded separately (by
        ``QUEUE_WAIT_FACTOR * timeout``), and so is a worker start (``STARTUP_TIMEOUT``).
        """
        if timeout <= 0:
            return None, "no time left for the symbolic check"
        if not self._lock.acquire(timeout=QUEUE_WAIT_FACTOR * timeout):
            return None, f"math worker busy for over {QUEUE_WAIT_FACTOR * timeout:.2g} s"
        try:
            return self._check_locked({"pred": pred, "gold": gold}, timeout)
        finally:
            self._lock.release()

    def clear_caches(self) -> None:
        """Empty the worker's parse caches (no-op if it isn't running)."""
        with self._lock:
            if self._process is not None and self._process.popen.poll() is None:
                self._check_locked({"op": "clear"}, STARTUP_TIMEOUT)

    def _check_locked(self, request: dict[str, Any], timeout: float) -> tuple[bool | None, str]:
        process = self._ensure()
        try:
            process.wait_ready()
            self._next_id += 1
            request["id"] = self._next_id
            start = time.monotonic()
            process.send(request)
            reply = process.receive(timeout)
        except VerifierError:
            self._replace()
            raise
        if reply is None:
            self._replace()
            return None, f"check exceeded {timeout:.3g} s (worker killed after {_since(start)})"
        if reply.get("id") != request["id"]:
            self._replace()
            raise VerifierError(
                f"math worker answered request {reply.get('id')}, not {request['id']}"
            )
        if reply.get("result") is None:
            raise VerifierError(f"math-verify raised {reply.get('error', '?')}")
        return bool(reply["result"]), str(reply.get("detail", "math-verify"))

    def _replace(self) -> None:
        """Kill the current worker and start its successor right away (not waiting for it).

        If the successor cannot be started, the next check tries again (and reports it).
        """
        if self._process is not None:
            self._process.kill()
        self.restarts += 1
        self._process = None
        with contextlib.suppress(VerifierError):
            self._process = _spawn()

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's worker (without killing it) and the lock."""
        self._lock = threading.Lock()
        self._process = None

    def shutdown(self) -> None:
        """Kill the worker (registered with :mod:`atexit`); a later check starts a new one."""
        acquired = self._lock.acquire(timeout=5.0)
        try:
            if self._process is not None:
                self._process.kill()
                self._process = None
        finally:
            if acquired:
                self._lock.release()


def _since(start: float) -> str:
    return f"{time.monotonic() - start:.2f} s"


WORKER = SymbolicWorker()
"""The process-wide worker (one child per interpreter)."""

atexit.register(WORKER.shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=WORKER.forget_after_fork)
