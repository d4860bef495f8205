"""`make run`'s launcher as a new user meets it: starts everything, serves, stops everything."""

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

pytestmark = pytest.mark.slow


def launch(var_dir, port, redis_port, llm_port):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "OPENAI_BASE_URL", "TEST_DATABASE_NAME", "DJANGO_ALLOW_ASYNC_UNSAFE")}
    env.update(VAR_DIR=str(var_dir), PORT=str(port), EMBEDDED_REDIS_PORT=str(redis_port),
               EMBEDDED_LLM_PORT=str(llm_port), DEMO_ADMIN_PASSWORD="demo pass 1234", WORKER_CONCURRENCY="1")
    log = open(var_dir / "launcher.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "assistant.embedded", "run"], cwd=BASE_DIR, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
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


def stop(proc, log):
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
    proc.wait(60)
    log.close()


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
            response = client.post("/accounts/login/", data={
                "login": "admin@example.com", "password": "demo pass 1234", "csrfmiddlewaretoken": token,
            }, headers={"Referer": f"{base}/accounts/login/"})
            assert response.status_code == 302
            assert client.get("/admin/").status_code == 200
    finally:
        stop(proc, log)
    output = (var_dir / "launcher.log").read_text()
    assert "Demo admin created" in output and "admin@example.com" in output
    time.sleep(1)
    assert ours(var_dir, [port, redis_port, llm_port]) == []

    # A second run reuses the data: no new admin is created.
    proc, log = launch(var_dir, port, redis_port, llm_port)
    try:
        wait_healthy(base, proc)
    finally:
        stop(proc, log)
    assert (var_dir / "launcher.log").read_text().count("Demo admin created") == 0
    time.sleep(1)
    assert ours(var_dir, [port, redis_port, llm_port]) == []
