"""Real processes for tests: a Celery worker and a Daphne server on the test database."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from django.db import connection

BASE_DIR = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """Distinct free ports (the sockets stay bound until all are chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def test_database_url() -> str:
    """The URL of the database pytest-django created, for processes outside this one."""
    cfg = connection.settings_dict
    auth = quote(cfg["USER"] or "")
    if cfg.get("PASSWORD"):
        auth += ":" + quote(cfg["PASSWORD"])
    host = cfg["HOST"] or ""
    if host.startswith("/"):
        return f"postgresql://{auth}@/{cfg['NAME']}?host={host}"
    port = f":{cfg['PORT']}" if cfg.get("PORT") else ""
    return f"postgresql://{auth}@{host}{port}/{cfg['NAME']}"


def child_env(**extra: str) -> dict:
    env = dict(os.environ)
    env["DATABASE_URL"] = test_database_url()
    env["DEBUG"] = "1"
    env.update(extra)
    return env


def check_deploy_in_production(**env_extra: str) -> subprocess.CompletedProcess:
    """``manage.py check --deploy --fail-level WARNING`` under the production settings the README
    documents (DEBUG=0, a real secret, hosts), plus ``env_extra``."""
    dropped = ("DEBUG", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE", "DJANGO_SETTINGS_MODULE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(
        DEBUG="0",
        SECRET_KEY="k" * 20 + "-production-secret-" + "z" * 30,
        ALLOWED_HOSTS="assistant.example.com",
        CSRF_TRUSTED_ORIGINS="https://assistant.example.com",
        **env_extra,
    )
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


class ManagedProcess:
    def __init__(self, name: str, argv: list[str], env: dict, log_path: Path):
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=BASE_DIR,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10) -> None:
        if self.alive():
            self.kill(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        self.kill(signal.SIGKILL)
        self.proc.wait()
        self._log.close()


def wait_for_other_db_sessions_to_end(timeout: float = 5) -> None:
    """A killed child's server backend lingers a moment; dropping the test DB needs it gone."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.05)


def wait_for_background_work(timeout: float = 15) -> None:
    """Until no source is still being indexed and no other session is mid-statement or
    mid-transaction: a test that ends while a worker writes would otherwise race the flush
    that empties the database after it (TRUNCATE against the worker's inserts)."""
    from knowledge.models import Source

    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')"
            )
            busy = cursor.fetchone()[0]
            pending = Source.objects.exclude(
                status__in=[Source.Status.READY, Source.Status.FAILED]
            ).exists()
            if not busy and not pending:
                return
            time.sleep(0.05)


def wait_for_idle_workers(queues=("default", "ingest"), timeout: float = 30) -> None:
    """Until every task sent so far has run: the queues are empty and no worker holds a task
    (active or reserved). What a test waits on instead of sleeping to let duplicates run."""
    from assistant.project.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with app.connection_for_read() as conn:
            queued = sum(conn.default_channel.client.llen(q) for q in queues)
        if not queued:
            inspect = app.control.inspect(timeout=0.5)
            held = [
                task
                for replies in (inspect.active() or {}, inspect.reserved() or {})
                for tasks in replies.values()
                for task in tasks
            ]
            if not held:
                return
        time.sleep(0.05)
    raise AssertionError(f"workers still busy after {timeout} s")


def stop_and_discard_late_writes(proc: ManagedProcess) -> None:
    """Kill a worker or server process started for a group of tests, then empty the database.

    Transactional tests flush the database after each test, but a process that outlives the
    test can still commit afterwards (a task finishing late, an answer being stored). Those rows
    would leak into the next module, e.g. an EmbeddingSpace written with another model.

    Killed, not asked to stop: a graceful stop (a worker's warm shutdown, Daphne closing its
    sockets) costs 3 s a process and nothing is wanted from it any more. The tests wait for the
    work they started before they end; anything the process still held is discarded with the
    database, and a task message it had taken returns to the queue only after the visibility
    timeout (an hour), naming rows that no longer exist (ids are never reused: the test database
    is truncated without resetting its sequences)."""
    from tests.support.database import empty_database

    proc.stop(timeout=0)
    wait_for_other_db_sessions_to_end()
    empty_database()


def stop_all_and_discard_late_writes(procs: list[ManagedProcess]) -> None:
    """:func:`stop_and_discard_late_writes` for several processes at once: all are killed before
    the wait for their database sessions to end (one at a time, each wait would run out its
    time-out on the sessions of those still alive)."""
    from tests.support.database import empty_database

    for proc in procs:
        proc.stop(timeout=0)
    wait_for_other_db_sessions_to_end()
    empty_database()


def start_workers(*names: str, **kwargs) -> list[ManagedProcess]:
    """Several workers started side by side (each :func:`start_worker` with ``name`` and the
    same ``kwargs``): most of a start is waiting for the worker to answer."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(names)) as pool:
        futures = [pool.submit(start_worker, name=name, **kwargs) for name in names]
    return [future.result() for future in futures]


def artifacts_dir() -> Path:
    path = Path(os.environ.get("VAR_DIR", BASE_DIR / "var" / "test")) / "logs"
    # One folder per pytest-xdist process: both start a "worker" and a "daphne".
    path /= os.environ.get("PYTEST_XDIST_WORKER", "")
    path.mkdir(parents=True, exist_ok=True)
    return path


def start_worker(
    *, queues: str = "default,ingest", concurrency: int = 1, name: str = "worker", **env_extra: str
) -> ManagedProcess:
    argv = [
        str(BIN / "celery"),
        "-A",
        "assistant",
        "worker",
        "-Q",
        queues,
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--purge",  # tasks left queued by earlier tests refer to rows that are gone
        "-n",
        nodename := f"{name}-{os.getpid()}-{time.monotonic_ns()}@{socket.gethostname()}",
    ]
    proc = ManagedProcess(name, argv, child_env(**env_extra), artifacts_dir() / f"{name}.log")
    proc.nodename = nodename  # what Celery's remote control calls it (ping, inspect)
    wait_for_worker(proc)
    return proc


def wait_for_worker(proc: ManagedProcess, timeout: float = 30) -> None:
    from assistant.project.celery import app

    # Its own answer: with another worker up, any answer would not say this one is ready.
    destination = [proc.nodename] if getattr(proc, "nodename", None) else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"worker exited early:\n{proc.log_tail()}")
        if app.control.ping(timeout=0.5, destination=destination):
            return
    raise RuntimeError(f"worker did not answer pings in {timeout}s:\n{proc.log_tail()}")


def start_daphne(**env_extra: str) -> tuple[ManagedProcess, int]:
    port = free_port()
    argv = [
        str(BIN / "daphne"),
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "assistant.project.asgi:application",
    ]
    proc = ManagedProcess("daphne", argv, child_env(**env_extra), artifacts_dir() / "daphne.log")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"daphne exited early:\n{proc.log_tail()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.1)
    raise RuntimeError(f"daphne did not listen:\n{proc.log_tail()}")


def worker_running(task_name: str, workers: list[ManagedProcess], timeout: float = 30):
    """The one of ``workers`` executing a ``task_name`` task, once one is (asked through
    Celery's remote control, as an operator's ``celery inspect active`` would)."""
    from assistant.project.celery import app

    by_node = {worker.nodename: worker for worker in workers}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        active = app.control.inspect(destination=list(by_node), timeout=1).active() or {}
        for node, tasks in active.items():
            if any(task["name"] == task_name for task in tasks):
                return by_node[node]
        time.sleep(0.05)
    raise AssertionError(f"no worker runs {task_name} after {timeout} s")
