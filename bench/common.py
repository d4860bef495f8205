"""Helpers shared by the benchmarks in ``bench/``: Django setup, the machine, a worker, RSS.

Benchmarks are scripts, not tests: they print ratios against a baseline measured in the same
run (absolute times depend on the machine and on whatever else runs on it) and never fail on
a time. Run them inside the embedded services with their own ``VAR_DIR``::

    VAR_DIR=var/bench EMBEDDED_LLM=0 .venv/bin/python -m assistant.embedded services -- \
        python bench/ingest.py
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CORPUS_DIR = BASE_DIR / "var" / "corpus" / "django-docs"
QA_FILE = BASE_DIR / "bench" / "eval" / "django_docs.jsonl"

if str(BASE_DIR) not in sys.path:  # `python bench/x.py` puts bench/ first, not the project
    sys.path.insert(0, str(BASE_DIR))


def setup_django(*, migrate: bool = True, database_url: str | None = None) -> None:
    """Settings from the environment (as the launcher exports them), then ``migrate``."""
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.project.settings")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # JSON request/indexing logs on stdout would drown the benchmark's own output.
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", "--no-input", verbosity=0)


def require_services() -> None:
    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        raise SystemExit(
            "DATABASE_URL/REDIS_URL are not set. Run inside the embedded services, e.g.\n"
            "  VAR_DIR=var/bench EMBEDDED_LLM=0 .venv/bin/python -m assistant.embedded "
            f"services -- python {' '.join(sys.argv)}"
        )


# --- the machine ---------------------------------------------------------------------------


def machine_info() -> dict:
    cpu = "unknown"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram_gib = None
    with suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = round(int(line.split()[1]) / 2**20, 1)
    return {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": ram_gib,
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def machine_line(info: dict) -> str:
    return (
        f"{info['date']} · {info['nproc']} CPUs ({info['cpu']}) · {info['ram_gib']} GiB RAM · "
        f"Python {info['python']} · load average at start {info['loadavg_at_start']}"
    )


def pg_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server = cursor.fetchone()[0]
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    return f"PostgreSQL {server}, pgvector {row[0] if row else '?'}"


# --- numbers -------------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation): p99 of 240 samples is the 238th."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.4999)))
    return ordered[rank - 1]


def summary_ms(samples_s: list[float]) -> dict:
    ms = [s * 1000 for s in samples_s]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "mean_ms": round(statistics.fmean(ms), 2) if ms else None,
    }


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def markdown_table(headers: list[str], rows: list[list]) -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def var_dir() -> Path:
    return Path(os.environ.get("VAR_DIR", BASE_DIR / "var")).resolve()


# --- processes -----------------------------------------------------------------------------


class Worker:
    """A real Celery worker process in its own process group, stopped by its PID."""

    def __init__(
        self,
        *,
        concurrency: int,
        queues: str = "default,ingest",
        log_path: Path,
        name: str | None = None,
    ):
        self.log_path = log_path
        # Several workers at once need a name each (Celery treats one name as one worker).
        self.name = name or f"bench-{os.getpid()}"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
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
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--purge",  # tasks left by an interrupted earlier run point at deleted rows
            "-n",
            f"{self.name}@%h",
        ]
        self.proc = subprocess.Popen(
            argv,
            env=dict(os.environ),
            cwd=BASE_DIR,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 60) -> float:
        from assistant.project.celery import app

        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log_tail()}")
            if app.control.ping(timeout=0.5, destination=[f"{self.name}@{_host()}"]):
                return time.monotonic() - started
        raise RuntimeError(f"worker did not answer pings within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15) -> None:
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        with suppress(ProcessLookupError):  # pool children left behind, if any
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._log.close()


def _host() -> str:
    import socket

    return socket.gethostname()


@dataclass
class RssSampler:
    """Samples a process and its children every ``interval`` s: peak of the sum and per process.

    Also keeps the tree's CPU time (user + system), which, unlike wall time, does not grow when
    other programs compete for the cores.
    """

    pid: int
    interval: float = 0.2
    peak_total: int = 0
    peak_single: int = 0
    samples: int = 0
    cpu_seconds: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    @property
    def cpu_total(self) -> float:
        return sum(self.cpu_seconds.values())

    def _run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for proc in procs:
                with suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                    rss = proc.memory_info().rss
                    total += rss
                    self.peak_single = max(self.peak_single, rss)
                    times = proc.cpu_times()
                    self.cpu_seconds[proc.pid] = times.user + times.system
            self.peak_total = max(self.peak_total, total)
            self.samples += 1
            self._stop.wait(self.interval)


def process_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class CpuClock:
    """Wall and CPU time (this process) of a block: ``with CpuClock() as c: ...; c.wall, c.cpu``."""

    def __enter__(self) -> CpuClock:
        self._wall = time.perf_counter()
        self._cpu = process_cpu_seconds()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = process_cpu_seconds() - self._cpu


def bench_superuser():
    from django.contrib.auth import get_user_model

    users = get_user_model().objects
    user = users.filter(email="bench-admin@example.com").first()
    return user or users.create_superuser(email="bench-admin@example.com", password=None)


def ensure_corpus() -> Path:
    """The Django docs corpus (``bench/corpus.py`` builds it once; needs a Debian mirror)."""
    if not (CORPUS_DIR / ".corpus.json").exists():
        print("building the corpus with bench/corpus.py ...", flush=True)
        subprocess.run([sys.executable, str(BASE_DIR / "bench" / "corpus.py")], check=True)
    return CORPUS_DIR


def load_questions(path: Path = QA_FILE) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def results_dir() -> Path:
    """Where benchmarks write their JSON results and logs: ``$VAR_DIR/results``."""
    path = var_dir() / "results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url(name: str) -> str:
    """``DATABASE_URL`` pointed at another database on the same server."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"/{name}"))
