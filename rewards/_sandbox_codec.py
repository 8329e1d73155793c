"""Plain-data codec and framed pipes shared by the sandbox's host, judge and runner.

Stdlib only: the zygote loads this file by path (its interpreter has no site-packages).
Values cross process boundaries as JSON trees that only builtin types can produce; decoding
builds fresh builtin objects, so nothing user-defined (an ``__eq__`` that always says yes,
an ``int`` subclass) survives the trip.
"""

from __future__ import annotations

import json
import os
import select
import time
from collections.abc import Callable
from typing import Any

MAX_DEPTH = 64
"""Deeper nesting in an argument or a return value is refused."""
MAX_MESSAGE = 8 * 1024 * 1024
"""Bytes one framed message may hold."""
MAX_TEXT = 2000
"""Characters kept of a message, a traceback or a repr."""

_INLINE_INT = 2**62


class NotPlainData(TypeError):
    """A value is not made of builtin data types only."""


class ChannelClosed(Exception):
    """The other end of a pipe went away."""


class ChannelTimeout(Exception):
    """The deadline passed while waiting on a pipe."""


# ---------------------------------------------------------------- codec


def encode(value: Any, depth: int = 0) -> Any:
    """A JSON-ready tree for a value made of exact builtin types (subclasses are refused)."""
    if depth > MAX_DEPTH:
        raise NotPlainData(f"nesting deeper than {MAX_DEPTH}")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value if -_INLINE_INT < value < _INLINE_INT else {"i": hex(value)}
    if kind is float:
        return {"f": repr(value)}
    if kind is list:
        return [encode(item, depth + 1) for item in value]
    if kind in (tuple, set, frozenset):
        tag = "t" if kind is tuple else "s" if kind is set else "z"
        return {tag: [encode(item, depth + 1) for item in value]}
    if kind is dict:
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if kind is bytes:
        return {"b": value.hex()}
    if kind is complex:
        return {"c": [repr(value.real), repr(value.imag)]}
    raise NotPlainData(f"a value of type {kind.__name__!r} is not plain data")


def decode(tree: Any, depth: int = 0) -> Any:
    """Rebuild a value from :func:`encode`'s tree; only fresh builtin objects come out."""
    if depth > MAX_DEPTH:
        raise NotPlainData(f"nesting deeper than {MAX_DEPTH}")
    if tree is None or type(tree) in (bool, int, str):
        return tree
    if type(tree) is float:
        return float(tree)
    if type(tree) is list:
        return [decode(item, depth + 1) for item in tree]
    if type(tree) is not dict or len(tree) != 1:
        raise NotPlainData("malformed value")
    ((tag, body),) = tree.items()
    if tag == "i" and type(body) is str:
        return int(body, 16)
    if tag == "f" and type(body) is str:
        return float(body)
    if tag == "b" and type(body) is str:
        return bytes.fromhex(body)
    if tag == "c" and type(body) is list and len(body) == 2:
        return complex(float(body[0]), float(body[1]))
    if type(body) is not list:
        raise NotPlainData("malformed value")
    items = [decode(item, depth + 1) for item in body]
    if tag == "t":
        return tuple(items)
    if tag == "s":
        return set(items)
    if tag == "z":
        return frozenset(items)
    if tag == "d" and all(type(pair) is list and len(pair) == 2 for pair in items):
        return {k: v for k, v in items}
    raise NotPlainData("malformed value")


def short(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 15] + " ...[truncated]"


def show(value: Any) -> str:
    """A bounded repr (never raises)."""
    try:
        return short(repr(value), 400)
    except Exception as exc:  # a repr that fails is still shown
        return f"<unprintable {type(value).__name__}: {type(exc).__name__}>"


# ---------------------------------------------------------------- framing


def send(fd: int, message: Any) -> None:
    """Write one length-prefixed JSON message."""
    data = json.dumps(message, ensure_ascii=True).encode("ascii")
    if len(data) > MAX_MESSAGE:
        raise NotPlainData(f"message of {len(data)} bytes is over the limit")
    data = len(data).to_bytes(4, "big") + data
    while data:
        data = data[os.write(fd, data) :]


Waiter = Callable[[int, float], None]
"""Blocks until a descriptor is readable; raises ChannelTimeout at the deadline."""


def _select_waiter(fd: int, deadline: float) -> None:
    wait = deadline - time.monotonic()
    if wait <= 0 or not select.select([fd], [], [], wait)[0]:
        raise ChannelTimeout("deadline")


def _read_exact(fd: int, size: int, deadline: float | None, waiter: Waiter) -> bytes:
    chunks, left = [], size
    while left:
        if deadline is not None:
            waiter(fd, deadline)
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise ChannelClosed("end of file")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(fd: int, deadline: float | None = None, waiter: Waiter = _select_waiter) -> Any:
    """Read one message written by :func:`send` (``deadline=None`` waits forever).

    The protocol is strictly call-and-answer, so one read usually holds the whole message;
    bytes beyond it are a protocol violation (``ValueError``).
    """
    if deadline is not None:
        waiter(fd, deadline)
    data = os.read(fd, 1 << 16)
    if not data:
        raise ChannelClosed("end of file")
    if len(data) < 4:
        data += _read_exact(fd, 4 - len(data), deadline, waiter)
    size = int.from_bytes(data[:4], "big")
    if size > MAX_MESSAGE:
        raise ChannelClosed(f"message of {size} bytes announced; over the limit")
    body = data[4:]
    if len(body) > size:
        raise ValueError("more bytes than one message")
    if len(body) < size:
        body += _read_exact(fd, size - len(body), deadline, waiter)
    return json.loads(body)


class OutputLimit(ChannelClosed):
    """The program wrote more output than allowed."""


class Outputs:
    """The program's stdout and stderr: kept up to ``cap`` bytes each, drained while waiting.

    A program that writes more than ``64 * cap`` bytes to one stream is stopped (``kill``).
    """

    def __init__(self, out: int, err: int, cap: int, kill: Callable[[], None]) -> None:
        self.fds = [out, err]
        self.kept = {out: bytearray(), err: bytearray()}
        self.seen = {out: 0, err: 0}
        self.cap, self.kill, self.overflow = cap, kill, False

    def _drain(self, fd: int) -> None:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            self.fds.remove(fd)
            return
        self.seen[fd] += len(chunk)
        room = self.cap - len(self.kept[fd])
        if room > 0:
            self.kept[fd] += chunk[:room]
        if self.seen[fd] > 64 * self.cap and not self.overflow:
            self.overflow = True
            self.kill()

    def wait(self, fd: int, deadline: float) -> None:
        """A :data:`Waiter` that keeps the output pipes flowing meanwhile."""
        while True:
            if self.overflow:
                raise OutputLimit("too much output")
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise ChannelTimeout("deadline")
            ready = select.select([fd, *self.fds], [], [], wait)[0]
            for stream in ready:
                if stream != fd:
                    self._drain(stream)
            if fd in ready:
                return

    def finish(self, grace: float = 0.2) -> tuple[str, str]:
        """Read what is left (the program is dead by now) and decode both streams."""
        until = time.monotonic() + grace
        while self.fds and (wait := until - time.monotonic()) > 0:
            for stream in select.select(self.fds, [], [], wait)[0]:
                self._drain(stream)
        out, err = self.kept.values()
        return out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def read_all(fd: int) -> bytes:
    """Everything until end of file."""
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)
