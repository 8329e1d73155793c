"""The sandbox's zygote: a clean interpreter that forks one supervised run per request.

Started by :mod:`rlvr.rewards.sandbox` as
``python -S -s -B -c BOOT <this file> <sock> <child> <tmpfs MB> <full|basic>`` with an empty
environment (only ``PYTHONHASHSEED=0`` and ``LC_ALL``), no inherited file descriptors but its
socket, in a new session. Stdlib only. At start, when it runs as root (and the mode is
``full``), it moves into its own network namespace (no interface up: no network at all) and
its own mount namespace, where it builds a read-only jail (``/usr``, ``/lib*``, the Python
prefix, four ``/dev`` nodes and a size-limited ``/tmp``) and ``chroot``\\ s into it. Then it
pre-imports common modules, builds the runners' standard streams, clears its environment,
freezes its objects for the garbage collector and waits.

Each request is a tiny message carrying three pipe ends (request in, tests in, result out).
The zygote forks a **supervisor**, which reads the request (host-written, :mod:`marshal`),
makes a fresh working directory and, in a new PID namespace where the kernel allows, forks
the **runner** (runs the program: own session, rlimits, own unprivileged uid). Then the
supervisor becomes the **judge**: it drops to that uid too, reads the tests (compiled by the
host), runs them against the runner, collects its output (capped), kills its process group
and PID namespace at the end or the deadline, and writes one JSON result. The zygote reaps
finished supervisors and removes their working directories.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import gc
import importlib.util
import json
import marshal
import os
import random
import resource
import shutil
import signal
import socket
import sys
import time
from typing import Any

CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND = 1, 2, 4, 32, 4096
MS_REC, MS_PRIVATE = 16384, 1 << 18
PR_SET_DUMPABLE = 4
UID_BASE = 1_100_000
"""Run ``k`` gets uid ``UID_BASE + (offset + k) % UID_SLOTS`` for runner and judge, with a
random offset per zygote; no account uses these uids."""
UID_SLOTS = 200_000
PREIMPORTS = (
    *("bisect", "collections", "copy", "functools", "hashlib", "heapq", "itertools"),
    *("math", "operator", "random", "re", "string", "typing"),
)
"""Imported once in the zygote, so programs that use them do not pay for the import."""

_libc = ctypes.CDLL(None, use_errno=True)
_unshare, _prctl = _libc.unshare, _libc.prctl  # looked up once, here, not in every child
child: Any = None  # the _sandbox_child module, loaded by path in main()
codec: Any = None  # the _sandbox_codec module, likewise
caps: dict[str, Any] = {}
_STREAMS: tuple[Any, Any, Any] = (None, None, None)
"""The runner's ``sys.stdout``, ``sys.stderr`` and ``sys.stdin`` on descriptors 1, 2 and 0,
built in the zygote (whose 0 and 1 are ``/dev/null``; it never writes to them) so that no
runner pays for building them; each runner's descriptors are its own pipes."""


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    enc = [None if v is None else v.encode() for v in (source, target, fstype, data or None)]
    if _libc.mount(enc[0], enc[1], enc[2], flags, enc[3]) != 0:
        raise OSError(ctypes.get_errno(), f"mount {target}")


def _bind_readonly(path: str, jail: str) -> None:
    target = jail + path
    if os.path.islink(path):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.symlink(os.readlink(path), target)
        return
    if os.path.isdir(path):
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        open(target, "a").close()
    _mount(path, target, None, MS_BIND | MS_REC)
    _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID)


def _build_jail(tmp_mb: int) -> None:
    """Private mounts, a read-only root holding only what Python needs, and ``chroot``."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0700")
    jail = "/tmp/jail"
    os.mkdir(jail, 0o755)
    _mount("tmpfs", jail, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    paths = ["/usr", "/lib", "/lib64", "/lib32", "/bin", sys.base_prefix]
    paths += ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"]
    for path in dict.fromkeys(paths):
        already = any(path.startswith(p + "/") for p in paths if p != path and os.path.isdir(p))
        if os.path.exists(path) and not (already and not os.path.islink(path)):
            _bind_readonly(path, jail)
    os.makedirs(jail + "/tmp", mode=0o711)
    _mount("tmpfs", jail + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_mb}m,mode=0711")
    _mount(None, jail, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chroot(jail)
    os.chdir("/")


def _isolate(tmp_mb: int, mode: str) -> None:
    """Enter the namespaces and the jail where the kernel allows; record what worked.

    ``mode`` ``"basic"`` skips every privileged layer (namespaces, jail, uid drop, PID
    namespace), as when the host is not root: the fallback, forced for testing.
    """
    caps.update(root=os.geteuid() == 0, netns=False, jail=False, uid_drop=False, mode=mode)
    caps["privileged"] = caps["root"] and mode == "full"
    caps["workdirs"] = "/tmp"
    caps["uid_offset"] = int.from_bytes(os.urandom(3), "big")  # zygotes of other hosts differ
    if caps["privileged"] and _unshare(CLONE_NEWNS | CLONE_NEWNET) == 0:
        caps["netns"] = True
        try:
            _build_jail(tmp_mb)
            caps["jail"] = caps["uid_drop"] = True
        except OSError as exc:
            caps["jail_error"] = str(exc)
    if not caps["jail"]:
        import tempfile

        caps["workdirs"] = tempfile.mkdtemp(prefix="rlvr-sandbox-")
        os.chmod(caps["workdirs"], 0o711)
        # Root without a jail (no CAP_SYS_ADMIN): still drop to the run's uid when that uid
        # can read the standard library, so that RLIMIT_NPROC and file permissions apply.
        stdlib = os.path.dirname(os.__file__)
        caps["uid_drop"] = caps["privileged"] and _world_readable(stdlib)


def _world_readable(path: str) -> bool:
    """Whether any user can read ``path`` (every directory above it searchable by others)."""
    import stat

    path = os.path.realpath(path)
    if not os.stat(path).st_mode & stat.S_IROTH:
        return False
    while path != "/":
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return False
        path = os.path.dirname(path)
    return True


def _remap_fds(fds: list[int]) -> None:
    """Make ``fds`` the descriptors 3, 4, ... and close every other one above 2."""
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100 + i) for i, fd in enumerate(fds)]
    for index, fd in enumerate(high):
        os.dup2(fd, 3 + index)
    os.closerange(3 + len(fds), 65536)


def _enter_child(limits: dict[str, Any], uid: int, cwd: str, memory_mb: int) -> None:
    """Common set-up of judge and runner: session, rlimits, cwd, identity."""
    os.setsid()
    cpu = int(limits["timeout"]) + 2
    for name, value in (
        ("RLIMIT_CPU", cpu),
        ("RLIMIT_AS", memory_mb * 2**20),
        ("RLIMIT_NPROC", limits["max_processes"]),
        ("RLIMIT_FSIZE", limits["max_file_mb"] * 2**20),
        ("RLIMIT_NOFILE", limits["max_open_files"]),
        ("RLIMIT_CORE", 0),
    ):
        resource.setrlimit(getattr(resource, name), (value, value))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    os.chdir(cwd)
    if caps["uid_drop"]:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    os.environ["HOME"] = os.environ["TMPDIR"] = cwd  # the rest was cleared in main()


def _text_stream(fd: int) -> Any:
    """A line-buffered text stream on ``fd`` that lives as long as the process."""
    return open(fd, "w", buffering=1, errors="backslashreplace", closefd=False)


def _start_runner(req: dict[str, Any], uid: int, fds: list[int], workdir: str) -> int:
    limits = req["limits"]
    pid = os.fork()
    if pid == 0:
        try:
            out, err, calls, answers = fds
            null = os.open("/dev/null", os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(err, 2)
            _remap_fds([calls, answers])
            _enter_child(limits, uid, workdir, limits["memory_mb"])
            sys.stdout, sys.stderr, sys.stdin = _STREAMS  # made once, in the zygote
            gc.enable()  # the program may count on collecting its cycles
            random.seed(0)
            if limits["audit_hooks"]:
                child.install_guard(workdir)
            child.runner_main(req["program"], req["entry_point"], 3, 4)
            child._flush()
        finally:
            os._exit(0)
    return pid


def _kill(pid: int) -> bool:
    """Kill the runner's process group and the runner (a PID-namespace init takes its
    namespace with it). False when the runner could not be signalled: it is still root, in
    its own (trusted, short) set-up, and the judge has already dropped to the run's uid."""
    signalled = True
    for target in (-pid, pid):
        try:
            os.kill(target, signal.SIGKILL)
        except PermissionError:
            signalled = signalled and target != pid  # the group may still be root's
        except OSError:
            pass
    return signalled


def _stop_runner(pid: int, patience: float = 5.0) -> Any:
    """Kill the runner and reap it; its resource usage. A judge that finishes before the
    runner has dropped its privileges (a broken test source, a deadline hit during the
    set-up) retries until the kill lands, so that no runner outlives its run."""
    give_up = time.monotonic() + patience
    while not _kill(pid) and time.monotonic() < give_up:
        time.sleep(0.001)
    return os.wait4(pid, 0)[2]


def _kill_uid() -> None:
    """Without a PID namespace: ``kill(-1)`` as the run's uid reaches processes that left
    the group (it spares the caller, the supervisor, which runs as that uid too)."""
    for _ in range(3):
        with contextlib.suppress(OSError):
            os.kill(-1, signal.SIGKILL)


def _become_judge(uid: int, limits: dict[str, Any]) -> None:
    """The supervisor drops to the run's uid, undumpable, before it reads any test."""
    if caps["uid_drop"]:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    _prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    memory = max(limits["memory_mb"], 1024) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = int(limits["timeout"]) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def supervise(run: int, req_fd: int, tests_fd: int, result_fd: int) -> None:
    """One run: read the request, fork the runner, then judge it and report."""
    started = time.monotonic()
    req = marshal.loads(codec.read_all(req_fd))  # written by the host only
    os.close(req_fd)
    limits = req["limits"]
    deadline = started + limits["timeout"]
    uid = UID_BASE + (caps["uid_offset"] + run) % UID_SLOTS
    workdir = _workdir(run)
    os.mkdir(workdir, 0o700)
    if caps["uid_drop"]:
        os.chown(workdir, uid, uid)
    calls_r, calls_w = os.pipe()
    answers_r, answers_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pidns = caps["privileged"] and _unshare(CLONE_NEWPID) == 0
    runner = _start_runner(req, uid, [out_w, err_w, calls_r, answers_w], workdir)
    for fd in (calls_r, answers_w, out_w, err_w):
        os.close(fd)
    _become_judge(uid, limits)
    spec = marshal.loads(codec.read_all(tests_fd))  # written by the host only
    os.close(tests_fd)
    outputs = codec.Outputs(out_r, err_r, limits["max_output_bytes"], lambda: _kill(runner))
    events, gone = child.judge_main(spec, calls_w, answers_r, outputs.wait, deadline)
    wall = time.monotonic() - started
    usage = _stop_runner(runner)
    stdout, stderr = outputs.finish()
    if not pidns and caps["uid_drop"]:
        _kill_uid()
    status = "output_limit" if outputs.overflow else "timeout" if gone == "timeout" else "completed"
    result = {
        "status": status,
        "events": events,
        "stdout": stdout,
        "stderr": stderr,
        "wall_time": wall,
        "cpu_time": usage.ru_utime + usage.ru_stime,
        "max_rss_kb": usage.ru_maxrss,
        "judge_cpu_time": time.process_time(),
        "pidns": bool(pidns),
    }
    data = json.dumps(result, ensure_ascii=True).encode("ascii")
    while data:
        data = data[os.write(result_fd, data) :]
    os.close(result_fd)  # the zygote removes the working directory once this process exits


def _workdir(run: int) -> str:
    return os.path.join(caps["workdirs"], f"run-{run}")


def _remove(path: str) -> None:
    """Remove a finished run's working directory, as the zygote (root where there is a
    jail: the run's uid may not write ``/tmp``). ``rmtree`` does not follow symlinks."""
    try:
        os.rmdir(path)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)


def _reap(running: dict[int, str]) -> None:
    """Collect the supervisors that have exited and remove their working directories."""
    while running:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pid = next(iter(running))
        if pid == 0:
            return
        if pid in running:
            _remove(running.pop(pid))


def _load(name: str, path: str) -> Any:
    """Import a sibling file by path (the zygote has no package to import it from)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    global child, codec, _STREAMS
    sock = socket.socket(fileno=int(sys.argv[1]))
    folder = os.path.dirname(sys.argv[2])
    codec = _load("_sandbox_codec", os.path.join(folder, "_sandbox_codec.py"))
    child = _load("_sandbox_child", sys.argv[2])
    _isolate(int(sys.argv[3]), sys.argv[4])
    for name in PREIMPORTS:
        __import__(name)
    _STREAMS = (_text_stream(1), _text_stream(2), open(0, closefd=False))  # noqa: SIM115
    os.environ.clear()  # every runner's environment: this, plus its own HOME and TMPDIR
    os.environ["PATH"] = "/usr/bin:/bin"
    gc.collect()
    gc.freeze()  # forked children then leave the zygote's objects alone (fewer page copies)
    gc.disable()  # no collection in the judge (short-lived, trusted); runners turn it back on
    sock.send(json.dumps({"ready": True, **caps}).encode())
    running: dict[int, str] = {}
    run = 0
    while True:
        message, fds, _, _ = socket.recv_fds(sock, 64, 3)
        if not message:
            break
        _reap(running)
        run += 1
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                supervise(run, *fds)
            finally:
                os._exit(0)
        running[pid] = _workdir(run)
        for fd in fds:
            os.close(fd)
    _reap(running)
    if not caps["jail"]:
        shutil.rmtree(caps["workdirs"], ignore_errors=True)


if __name__ == "__main__":
    main()
