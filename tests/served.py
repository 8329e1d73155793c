"""Serve an env in a thread for tests: ``with running(config) as (url, sessions): ...``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rlvr.envs.remote import ServerConfig
from rlvr.envs.remote.server import bind, create_app, uvicorn_server


@contextmanager
def running(config: ServerConfig) -> Iterator[tuple[str, Any]]:
    """Serve ``config`` in a thread on a free port; yields ``(url, session manager)``."""
    app = create_app(config)
    sock = bind("127.0.0.1", 0)
    server = uvicorn_server(app, config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", app.state.sessions
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
