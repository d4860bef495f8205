"""Child processes of the development stack: started in their own session, stopped by PID.

Plain Python, no Django: the launcher uses these before any app runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from contextlib import suppress
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def log(message: str) -> None:
    print(f"[embedded] {message}", flush=True)


def wait_for_port(port: int, *, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with status {proc.returncode} before listening")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {timeout:.0f}s")


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def port_holder(port: int) -> str | None:
    """Which process listens on 127.0.0.1:``port`` ("redis-server (pid 123)"), if we can tell.

    psutil (a dev dependency) sees other users' sockets only as root; None means unknown.
    """
    try:
        import psutil
    except ImportError:
        return None
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return None
            try:
                return f"{psutil.Process(conn.pid).name()} (pid {conn.pid})"
            except psutil.Error:
                return f"pid {conn.pid}"
    return None


def port_taken_message(port: int, variable: str, *, what: str) -> str:
    """The error for a port already in use: what holds it and what to do about it."""
    holder = port_holder(port)
    held = f"by {holder}" if holder else "(by a process this user cannot see)"
    return (
        f"Port {port} ({variable}, for {what}) is already in use {held}. "
        "If that is `make run` in another terminal, run commands beside it with "
        "`.venv/bin/python manage.py ...`, or stop it with Ctrl-C there. Otherwise stop that "
        f"process, or choose a free port: {variable}=<port> in front of this command."
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def consecutive_free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports (``run --web N`` takes PORT..PORT+N)."""
    for _ in range(50):
        base = free_port()
        if base + count > 65535:
            continue
        held: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports")


class Children:
    """Child processes, each in its own session so a signal can reach its whole tree."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], *, env: dict, log_file: Path | None = None):
        out = open(log_file, "ab") if log_file else None  # noqa: SIM115 - closed with the child
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=BASE_DIR,
            start_new_session=True,
            stdout=out or None,
            stderr=subprocess.STDOUT if out else None,
        )
        self.procs.append((name, proc))
        log(f"started {name} (pid {proc.pid})")
        return proc

    def stop_all(self, timeout: float = 15) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, proc in reversed(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop in time; killing it")
            # Kill whatever is left of the group (pool children, reloaders) in every case.
            signal_group(proc, signal.SIGKILL)
            proc.wait()
            log(f"stopped {name}")
        self.procs.clear()


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
