"""`make run`'s launcher as a new user meets it: starts everything, serves, stops everything;
and the model server each mode starts. Real processes, marked slow."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest

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


def launch(var_dir, port, redis_port, llm_port):
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
        DEMO_ADMIN_PASSWORD="demo pass 1234",
        WORKER_CONCURRENCY="1",
        EMBEDDED_LLM_MODEL="smollm2-135m",
    )
    log = open(var_dir / "launcher.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant.embedded", "run"],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return proc, log


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


@pytest.mark.slow
def test_run_serves_the_app_and_ctrl_c_leaves_nothing_running(tmp_path):
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    port, redis_port, llm_port = free_ports(3)
    base = f"http://127.0.0.1:{port}"
    proc, log = launch(var_dir, port, redis_port, llm_port)
    try:
        health = wait_healthy(base, proc)
        assert all(check["ok"] for check in health["checks"].values())
        assert httpx.get(f"{base}/accounts/login/").status_code == 200
        with httpx.Client(base_url=base) as client:
            client.get("/accounts/login/")
            token = client.cookies["csrftoken"]
            response = client.post(
                "/accounts/login/",
                data={
                    "login": "admin@example.com",
                    "password": "demo pass 1234",
                    "csrfmiddlewaretoken": token,
                },
                headers={"Referer": f"{base}/accounts/login/"},
            )
            assert response.status_code == 302
            assert client.get("/admin/").status_code == 200
    finally:
        stop(proc, log)
    output = (var_dir / "launcher.log").read_text()
    assert "Demo admin created" in output and "admin@example.com" in output
    assert "local model smollm2-135m serving (context budget 4096 tokens)" in output
    assert left_running(var_dir, [port, redis_port, llm_port]) == []

    # A second run reuses the data: no new admin is created.
    proc, log = launch(var_dir, port, redis_port, llm_port)
    try:
        wait_healthy(base, proc)
    finally:
        stop(proc, log)
    assert (var_dir / "launcher.log").read_text().count("Demo admin created") == 0
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
