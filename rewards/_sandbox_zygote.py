"""The sandbox's zygote: a clean interpreter that forks one supervised run per request.

Started by :mod:`rlvr.rewards.sandbox` as ``python -S -s -B -c BOOT <this file> <sock> <child>``
with an empty environment (only ``PYTHONHASHSEED=0`` and ``LC_ALL``), no inherited file
descriptors but its socket, in a new session. Stdlib only. At start, when it runs as root, it
moves into its own network namespace (no interface up: no network at all) and its own mount
namespace, where it builds a read-only jail (``/usr``, ``/lib*``, the Python prefix, four
``/dev`` nodes and a size-limited ``/tmp``) and ``chroot``\\ s into it. Then it pre-imports
common modules and waits.

Each request is a tiny message carrying three pipe ends (request in, tests in, result out).
The zygote forks a **supervisor**, which reads the request, makes a fresh working directory,
forks the **judge** (reads the tests), then, in a new PID namespace where the kernel allows,
the **runner** (runs the program). Both drop to their own unprivileged uid, set their rlimits
and start a new session; the supervisor collects the judge's verdicts and the runner's
output (capped), kills both process groups at the deadline, and writes one JSON result.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import gc
import importlib.util
import json
import os
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
child: Any = None  # the _sandbox_child module, loaded by path in main()
codec: Any = None  # the _sandbox_codec module, likewise
caps: dict[str, Any] = {}


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


def _isolate(tmp_mb: int) -> None:
    """Enter the namespaces and the jail where the kernel allows; record what worked."""
    caps.update(root=os.geteuid() == 0, netns=False, jail=False, uid_drop=False)
    caps["workdirs"] = "/tmp"
    caps["uid_offset"] = int.from_bytes(os.urandom(3), "big")  # zygotes of other hosts differ
    if caps["root"] and _libc.unshare(CLONE_NEWNS | CLONE_NEWNET) == 0:
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
        caps["uid_drop"] = caps["root"] and _world_readable(os.path.dirname(os.__file__))


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
    os.environ.clear()
    os.environ.update({"HOME": cwd, "PATH": "/usr/bin:/bin", "TMPDIR": cwd})


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
            sys.stdout = _text_stream(1)
            sys.stderr = _text_stream(2)
            sys.stdin = open(0, closefd=False)  # noqa: SIM115 - lives as long as the process
            import random

            random.seed(0)
            if limits["audit_hooks"]:
                child.install_guard(workdir)
            child.runner_main(req["program"], req["entry_point"], 3, 4)
            child._flush()
        finally:
            os._exit(0)
    return pid


def _kill(pid: int) -> None:
    """Kill the runner's process group and the runner (a PID-namespace init takes its
    namespace with it)."""
    for target in (-pid, pid):
        with contextlib.suppress(OSError):
            os.kill(target, signal.SIGKILL)


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
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    memory = max(limits["memory_mb"], 1024) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = int(limits["timeout"]) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def supervise(run: int, req_fd: int, tests_fd: int, result_fd: int) -> None:
    """One run: read the request, fork the runner, then judge it and report."""
    started = time.monotonic()
    req = json.loads(codec.read_all(req_fd))
    os.close(req_fd)
    limits = req["limits"]
    deadline = started + limits["timeout"]
    uid = UID_BASE + (caps["uid_offset"] + run) % UID_SLOTS
    workdir = os.path.join(caps["workdirs"], f"run-{run}")
    os.mkdir(workdir, 0o700)
    if caps["uid_drop"]:
        os.chown(workdir, uid, uid)
    calls_r, calls_w = os.pipe()
    answers_r, answers_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pidns = caps["root"] and _libc.unshare(CLONE_NEWPID) == 0
    runner = _start_runner(req, uid, [out_w, err_w, calls_r, answers_w], workdir)
    for fd in (calls_r, answers_w, out_w, err_w):
        os.close(fd)
    _become_judge(uid, limits)
    spec = json.loads(codec.read_all(tests_fd))
    os.close(tests_fd)
    outputs = codec.Outputs(out_r, err_r, limits["max_output_bytes"], lambda: _kill(runner))
    events, gone = child.judge_main(spec, calls_w, answers_r, outputs.wait, deadline)
    wall = time.monotonic() - started
    _kill(runner)
    usage = os.wait4(runner, 0)[2]
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
    os.close(result_fd)
    shutil.rmtree(workdir, ignore_errors=True)


def _load(name: str, path: str) -> Any:
    """Import a sibling file by path (the zygote has no package to import it from)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    global child, codec
    sock = socket.socket(fileno=int(sys.argv[1]))
    folder = os.path.dirname(sys.argv[2])
    codec = _load("_sandbox_codec", os.path.join(folder, "_sandbox_codec.py"))
    child = _load("_sandbox_child", sys.argv[2])
    _isolate(int(sys.argv[3]))
    for name in PREIMPORTS:
        __import__(name)
    gc.collect()
    gc.freeze()  # forked children then leave the zygote's objects alone (fewer page copies)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    sock.send(json.dumps({"ready": True, **caps}).encode())
    run = 0
    while True:
        message, fds, _, _ = socket.recv_fds(sock, 64, 3)
        if not message:
            break
        run += 1
        if os.fork() == 0:
            try:
                sock.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                supervise(run, *fds)
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)
    if not caps["jail"]:
        shutil.rmtree(caps["workdirs"], ignore_errors=True)


if __name__ == "__main__":
    main()
