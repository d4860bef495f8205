"""`make run`'s launcher as a new user meets it: starts everything, shows where and as whom to
sign in, lets a second terminal's `manage.py` reach its stack, stops everything; and the model
server each mode starts. Real processes, marked slow."""

import asyncio
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest
import websockets

from assistant.devstack import proxy
from assistant.devstack.processes import consecutive_free_ports, port_in_use
from tests.support.processes import BASE_DIR, free_ports

LAUNCHER_VARIABLES = ("DATABASE_URL", "REDIS_URL", "OPENAI_BASE_URL", "TEST_DATABASE_NAME")
# The suite's own: `make run` has production's settings (the suite's are tests/settings.py).
SUITE_VARIABLES = ("DJANGO_ALLOW_ASYNC_UNSAFE", "DJANGO_SETTINGS_MODULE")
LLM_VARIABLES = (
    "EMBEDDED_LLM_MODEL",
    "EMBEDDED_LLM_BASE_URL",
    "LLM_MODEL",
    "LLM_CONTEXT_TOKENS",
    "LLM_TIMEOUT",
    "OPENAI_API_KEY",
)


def launch(
    var_dir,
    port,
    redis_port,
    llm_port,
    *,
    admin_password: str | None = "demo pass 1234",
    args: tuple[str, ...] = (),
    **variables: str,
):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (*LAUNCHER_VARIABLES, *LLM_VARIABLES, *SUITE_VARIABLES)
    }
    # The small model: this is about the launcher (test_default_model.py is about the default).
    env.update(
        VAR_DIR=str(var_dir),
        PORT=str(port),
        EMBEDDED_REDIS_PORT=str(redis_port),
        EMBEDDED_LLM_PORT=str(llm_port),
        WORKER_CONCURRENCY="1",
        EMBEDDED_LLM_MODEL="smollm2-135m",
        **variables,
    )
    env.pop("DEMO_ADMIN_PASSWORD", None)
    if admin_password is not None:
        env["DEMO_ADMIN_PASSWORD"] = admin_password
    log = open(var_dir / "launcher.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant.embedded", "run", *args],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, log


@pytest.fixture
def var_dir():
    """The stack's data folder, outside pytest's temporary root: as root, the embedded PostgreSQL
    runs as its own user, which must reach the folder, and every pytest session on the machine
    resets that root to 0700 when it starts (a test running beside another failed on it)."""
    path = Path(tempfile.mkdtemp(prefix="assistant-launcher-"))
    path.chmod(0o755)
    yield path / "var"
    shutil.rmtree(path, ignore_errors=True)


def wait_healthy(base, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the launcher exited early"
        try:
            response = httpx.get(f"{base}/healthz", timeout=3)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("never healthy")


def ours(var_dir, ports) -> list[str]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if str(var_dir) in cmd or any(re.search(rf"\b{port}\b", cmd) for port in ports):
            found.append(cmd)
    return found


def left_running(var_dir, ports, timeout: float = 10) -> list[str]:
    """Our processes still running once they have had ``timeout`` seconds to exit."""
    deadline = time.monotonic() + timeout
    while (found := ours(var_dir, ports)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def stop(proc, log):
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
    proc.wait(60)
    log.close()


def wait_for_output(var_dir, proc, text: str, timeout: float = 30) -> str:
    """The launcher's output once it contains ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = (var_dir / "launcher.log").read_text()
        if text in output:
            return output
        assert proc.poll() is None, "the launcher exited early"
        time.sleep(0.2)
    raise AssertionError(f"the launcher never printed {text!r}")


def second_terminal(var_dir, *args: str, python: str = sys.executable, **variables: str):
    """``python manage.py ARGS`` as typed in a fresh terminal: no configuration at all. Only
    VAR_DIR says where this test's `make run` keeps its data (a real one uses ./var)."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    env.update(VAR_DIR=str(var_dir), **variables)
    return subprocess.run(
        [python, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def embedded(var_dir, *args: str, **variables: str) -> subprocess.CompletedProcess:
    """``python -m assistant.embedded ARGS`` from a fresh terminal."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    env.update(VAR_DIR=str(var_dir), **variables)
    return subprocess.run(
        [sys.executable, "-m", "assistant.embedded", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def sign_in(base: str, email: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base)
    client.get("/accounts/login/")
    response = client.post(
        "/accounts/login/",
        data={
            "login": email,
            "password": password,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
        headers={"Referer": f"{base}/accounts/login/"},
    )
    assert response.status_code == 302, "the sign-in was refused"
    return client


@pytest.mark.slow
def test_run_serves_the_app_and_ctrl_c_leaves_nothing_running(tmp_path, var_dir):
    """One stack for several checks (each start costs 30-60 s): the sign-in box, a second
    terminal's commands, what never reads the stack's file, and a second start refused."""
    var_dir.mkdir()
    port, redis_port, llm_port = free_ports(3)
    base = f"http://127.0.0.1:{port}"
    run_file = var_dir / "run.env"
    proc, log = launch(var_dir, port, redis_port, llm_port, admin_password=None)
    try:
        health = wait_healthy(base, proc)
        assert all(check["ok"] for check in health["checks"].values())

        # The sign-in box comes last, once everything is up, with the password just made.
        output = wait_for_output(var_dir, proc, "Everything is up. Sign in at:")
        box = output[output.index("\u250c") :]
        assert output.index("serving on") < output.index("Everything is up")
        assert re.search(r"celery@\S+ ready", output[: output.index("\u250c")])
        assert f"http://127.0.0.1:{port}/accounts/login/" in box
        assert "email:    admin@example.com" in box
        password = re.search(r"password: (\S+)", box).group(1)
        admin = sign_in(base, "admin@example.com", password)
        assert admin.get("/admin/").status_code == 200
        admin.close()

        # What a second terminal needs, for the owner only, while the stack runs.
        assert stat.S_IMODE(run_file.stat().st_mode) == 0o600
        saved = run_file.read_text()

        # A second terminal: `.venv/bin/python manage.py ...` with nothing set just works.
        done = second_terminal(var_dir, "migrate", "--check")
        assert done.returncode == 0, done.stderr
        done = second_terminal(
            var_dir,
            "createsuperuser",
            "--noinput",
            "--email",
            "ada@example.com",
            DJANGO_SUPERUSER_PASSWORD="ada pass 1234",
        )
        assert done.returncode == 0, done.stderr
        # The account is in the database the web process serves.
        sign_in(base, "ada@example.com", "ada pass 1234").close()
        handbook = tmp_path / "travel.md"
        handbook.write_text("# Travel\n\nBook trains through the travel desk, two weeks ahead.\n")
        done = second_terminal(
            var_dir, "ingest", str(handbook), "--collection", "Handbook", "--timeout", "120"
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "No Celery worker answered" not in done.stdout  # the stack's worker indexed it
        # A short answer: this is about reaching the stack's model, not about the answer (the
        # machine's cores are shared; LLM_MAX_TOKENS is a tuning, not a configuration).
        done = second_terminal(
            var_dir,
            "ask",
            "How do I book trains?",
            "--user",
            "ada@example.com",
            LLM_MAX_TOKENS="16",
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "chat/completions" in done.stdout  # the stack's model answered
        done = second_terminal(
            var_dir,
            "shell",
            "-c",
            "from knowledge.models import Chunk; print(Chunk.objects.count())",
        )
        assert done.returncode == 0, done.stderr
        assert int(done.stdout.splitlines()[-1]) >= 1  # the chunks the stack's worker wrote
        # The README's `python manage.py ...`: a Python without Django runs it with the venv's.
        system_python = shutil.which("python3", path="/usr/bin:/bin")
        if system_python and subprocess.run([system_python, "-c", "import django"]).returncode:
            done = second_terminal(var_dir, "migrate", "--check", python=system_python)
            assert done.returncode == 0, done.stderr
        # ... and the documented `python -m assistant.embedded services -- python manage.py ...`
        # uses the running stack instead of failing on its Redis port.
        done = embedded(var_dir, "services", "--", "python", "manage.py", "migrate", "--check")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "using the stack `make run` started" in done.stdout

        # An explicit configuration is never turned into the development one.
        done = second_terminal(var_dir, "migrate", "--check", DEBUG="0")
        assert done.returncode != 0
        assert "SECRET_KEY must be set" in done.stderr
        show = "import os; from django.conf import settings; print(os.environ.get('REDIS_URL'), settings.DATABASES['default']['NAME'])"
        done = second_terminal(
            var_dir,
            "shell",
            "-c",
            show,
            DEBUG="1",
            DATABASE_URL="postgresql://someone@db.invalid/production",
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1].split() == ["None", "production"]

        # A second `make run` on the same data is refused, naming the running one; another
        # on the same port says what holds the port and what to do.
        done = embedded(var_dir, "run", PORT=str(port))
        assert done.returncode != 0 and "`make run` is already running" in done.stderr
        done = embedded(tmp_path / "other", "run", PORT=str(port))
        assert done.returncode != 0
        assert f"Port {port} (PORT, for the web server) is already in use by" in done.stderr
        assert re.search(r"\(pid \d+\)", done.stderr)
        assert "Traceback" not in done.stderr
    finally:
        stop(proc, log)
    output = (var_dir / "launcher.log").read_text()
    assert "local model smollm2-135m serving (context budget 4096 tokens)" in output
    assert left_running(var_dir, [port, redis_port, llm_port]) == []
    assert not run_file.exists()

    # A file left behind by a launcher that is gone (killed, a reboot) is ignored, with a hint.
    run_file.write_text(saved)
    run_file.chmod(0o600)  # as the launcher left it: only its launcher being gone is wrong
    done = second_terminal(var_dir, "migrate", "--check")
    assert done.returncode != 0
    assert "left over from a `make run` that is no longer running" in done.stderr

    # A second run reuses the data: no new admin, and the box says how to reset its password.
    proc, log = launch(var_dir, port, redis_port, llm_port)
    try:
        wait_healthy(base, proc)
        output = wait_for_output(var_dir, proc, "Everything is up. Sign in at:")
    finally:
        stop(proc, log)
    assert "Demo admin created" not in output
    assert "Administrator: admin@example.com" in output
    assert "manage.py changepassword admin@example.com" in output
    assert left_running(var_dir, [port, redis_port, llm_port]) == []


def _launched_llm_env(mode: str, tmp_path, **extra: str) -> dict:
    """Runs the launcher in ``mode`` around a command that prints what it was given; the
    database and Redis of this test run are reused, so only the model server starts."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", *LLM_VARIABLES)}
    env.update(VAR_DIR=str(tmp_path), EMBEDDED_LLM_PORT=str(free_ports(1)[0]), **extra)
    script = (
        f"import json, os; print(json.dumps({{k: os.environ.get(k) for k in {LLM_VARIABLES!r}}}))"
    )
    done = subprocess.run(
        [sys.executable, "-m", "assistant.embedded", mode, "--", "python", "-c", script],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))


@pytest.mark.slow
def test_the_test_launcher_serves_the_small_model_and_exports_it(tmp_path):
    given = _launched_llm_env("test", tmp_path)

    assert given["EMBEDDED_LLM_MODEL"] == "smollm2-135m"
    assert given["LLM_MODEL"] == "smollm2-135m-instruct"
    assert given["LLM_CONTEXT_TOKENS"] == "4096"
    assert given["EMBEDDED_LLM_BASE_URL"].startswith("http://127.0.0.1:")


@pytest.mark.slow
def test_outside_tests_the_launcher_serves_the_default_qwen_model(tmp_path):
    given = _launched_llm_env("services", tmp_path, LLM_CONTEXT_TOKENS="1800")

    assert given["EMBEDDED_LLM_MODEL"] == "qwen2.5-coder-1.5b"
    assert given["LLM_MODEL"] == "qwen2.5-coder-1.5b-instruct"
    assert given["LLM_CONTEXT_TOKENS"] == "1800"  # set explicitly: it wins
    assert given["LLM_TIMEOUT"] == "180"


async def _hello_through(base: str, cookie: str) -> dict:
    async with websockets.connect(
        base.replace("http://", "ws://") + "/ws/events/",
        additional_headers={"Cookie": cookie},
        origin=base,
        open_timeout=10,
    ) as ws:
        return json.loads(await asyncio.wait_for(ws.recv(), 10))


@pytest.mark.slow
@pytest.mark.skipif(
    proxy.find_nginx(dict(os.environ)) is None, reason="needs nginx (make system-deps)"
)
def test_two_web_processes_behind_nginx_and_two_workers_start_serve_and_stop_together(var_dir):
    """`run --web 2 --workers 2`: one start of the stack for every check (it is slow)."""
    var_dir.mkdir()
    port = consecutive_free_ports(3)
    redis_port, llm_port = free_ports(2)
    base = f"http://127.0.0.1:{port}"
    # No model: this is about the processes and the proxy (answers are other tests' work). A
    # worker ping remembered for 1 s: /healthz turns green as soon as the workers are up.
    proc, log = launch(
        var_dir,
        port,
        redis_port,
        llm_port,
        args=("--web", "2", "--workers", "2"),
        EMBEDDED_LLM="0",
        HEALTH_WORKER_CHECK_SECONDS="1",
        URL_REFRESH_TICK_SECONDS="1",  # the beat's refresh tick, so one is seen at once
    )
    started = []
    try:
        # Healthy through the proxy's port (the database, Redis and a worker answer).
        health = wait_healthy(base, proc)
        assert all(check["ok"] for check in health["checks"].values())
        output = wait_for_output(var_dir, proc, "Everything is up. Sign in at:")
        assert f"nginx on port {port} in front of 2 web processes" in output
        assert f"http://127.0.0.1:{port}/accounts/login/" in output[output.index("\u250c") :]
        started = psutil.Process(proc.pid).children(recursive=True)

        # Requests through the proxy reach both Daphnes (the development config names the one
        # that answered; its access log says the same).
        answered_by = {
            httpx.get(f"{base}/healthz", timeout=10).headers["X-Upstream"] for _ in range(6)
        }
        assert answered_by == {f"127.0.0.1:{port + 1}", f"127.0.0.1:{port + 2}"}

        # Signed in through the proxy, a WebSocket through it gets its hello.
        client = sign_in(base, "admin@example.com", "demo pass 1234")
        cookie = f"sessionid={client.cookies['sessionid']}"
        client.close()
        hellos = [asyncio.run(_hello_through(base, cookie)) for _ in range(2)]
        assert all(hello["type"] == "hello" and hello["user_id"] for hello in hellos), hellos

        # Two workers, each under its own name and on its own queue, answer (a second terminal).
        queues = (
            "import json; from assistant.project.celery import app; "
            "replies = app.control.inspect(timeout=3).active_queues() or {}; "
            "print(json.dumps({w: sorted(q['name'] for q in qs) for w, qs in replies.items()}))"
        )
        done = second_terminal(var_dir, "shell", "-c", queues)
        assert done.returncode == 0, done.stderr
        workers = json.loads(done.stdout.strip().splitlines()[-1])
        assert {name.split("@")[0]: names for name, names in workers.items()} == {
            "w1": ["default"],
            "w2": ["ingest"],
        }, workers

        # One beat (whatever --workers says) sends the schedule's ticks; the ingest worker runs them.
        deadline = time.monotonic() + 90
        ticked = re.compile(r"Task knowledge\.refresh_due\[[^\]]+\] succeeded")
        while not ticked.search((var_dir / "launcher.log").read_text()):
            assert time.monotonic() < deadline, "the beat's refresh tick never ran"
            assert proc.poll() is None, "the launcher exited early"
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)  # what a supervisor sends
        proc.wait(60)
        log.close()
    ports = [port, port + 1, port + 2, redis_port]
    assert [p for p in ports if port_in_use(p)] == []
    assert [p.pid for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    stopped = re.findall(r"stopped (\S+)", (var_dir / "launcher.log").read_text())
    assert {"proxy", "web-1", "web-2", "worker-1", "worker-2"} <= set(stopped)
    assert stopped.count("beat") == 1
    assert left_running(var_dir, ports) == []
