"""The launcher's choices, checked without starting the stack: which local model and what the app
is told about it, and a clear error for an unknown one; what a second terminal reads
(run.env), the port-in-use error and the sign-in box; the topology (`run --web N --workers M`):
its ports, workers and refusals. Starting the whole stack is
tests/e2e/test_launcher.py."""

import contextlib
import os
import socket
import stat
import subprocess
import sys

import pytest

from assistant.devstack import localmodel, proxy
from assistant.devstack.launcher import (
    boxed,
    daphne_argv,
    embedded_llm_env,
    manage_output,
    sign_in_box,
    web_ports,
    worker_argv,
)
from assistant.devstack.processes import port_taken_message
from assistant.project import run_env
from tests.support.processes import BASE_DIR, free_ports

LLM_VARIABLES = (
    "EMBEDDED_LLM_MODEL",
    "EMBEDDED_LLM_BASE_URL",
    "LLM_MODEL",
    "LLM_CONTEXT_TOKENS",
    "LLM_TIMEOUT",
    "OPENAI_API_KEY",
)


# -- which local model, and what the app is told about it --------------------------------------


def test_the_launcher_tells_the_app_the_model_and_its_per_model_defaults():
    qwen = localmodel.choose("qwen2.5-coder-1.5b")

    exported = embedded_llm_env(qwen, {}, base_url="http://127.0.0.1:8081/v1")

    assert exported == {
        "OPENAI_BASE_URL": "http://127.0.0.1:8081/v1",
        "EMBEDDED_LLM_BASE_URL": "http://127.0.0.1:8081/v1",
        "EMBEDDED_LLM_MODEL": "qwen2.5-coder-1.5b",
        "OPENAI_API_KEY": "local",
        "LLM_MODEL": "qwen2.5-coder-1.5b-instruct",
        "LLM_CONTEXT_TOKENS": "2048",
        "LLM_TIMEOUT": "180",
    }
    small = embedded_llm_env(localmodel.choose("smollm2-135m"), {}, base_url="http://x/v1")
    assert (small["LLM_MODEL"], small["LLM_CONTEXT_TOKENS"]) == ("smollm2-135m-instruct", "4096")


def test_what_the_operator_set_explicitly_always_wins_over_the_model_defaults():
    qwen = localmodel.choose("qwen2.5-coder-1.5b")
    operator = {"LLM_CONTEXT_TOKENS": "3000", "LLM_TIMEOUT": "99", "LLM_MODEL": "mine"}

    exported = embedded_llm_env(qwen, operator, base_url="http://127.0.0.1:8081/v1")

    assert not {"LLM_CONTEXT_TOKENS", "LLM_TIMEOUT", "LLM_MODEL"} & exported.keys()


def test_an_unknown_model_stops_the_launcher_with_a_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", *LLM_VARIABLES)}
    env.update(
        VAR_DIR=str(tmp_path),
        EMBEDDED_LLM_PORT=str(free_ports(1)[0]),
        EMBEDDED_LLM_MODEL="gpt-9000",
    )

    done = subprocess.run(
        [sys.executable, "-m", "assistant.embedded", "services", "--", "python", "-c", "pass"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode != 0
    assert "EMBEDDED_LLM_MODEL='gpt-9000' is not a known local model" in done.stderr
    assert "Traceback" not in done.stderr


# -- run.env: what a second terminal reads beside `make run` -------------------------------------


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)


def test_run_env_is_written_for_its_owner_only_and_read_while_its_launcher_lives(tmp_path):
    path = tmp_path / run_env.FILE_NAME
    run_env.write(
        path, {"DATABASE_URL": "postgresql://x@/assistant", "DEBUG": "1"}, pid=os.getpid()
    )

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values, hint = run_env.read_live(path)
    assert values == {"DATABASE_URL": "postgresql://x@/assistant", "DEBUG": "1"}
    assert hint is None


def test_a_value_that_would_break_the_one_line_format_is_left_out(tmp_path):
    path = tmp_path / run_env.FILE_NAME
    run_env.write(
        path, {"SECRET_KEY": "a\nDATABASE_URL=postgresql://evil/x", "DEBUG": "1"}, pid=os.getpid()
    )

    values, _ = run_env.read_live(path)
    assert values == {"DEBUG": "1"}


def test_a_run_env_others_could_have_written_is_ignored(tmp_path):
    path = tmp_path / run_env.FILE_NAME
    run_env.write(path, {"DATABASE_URL": "postgresql://x@/assistant"}, pid=os.getpid())
    path.chmod(0o666)  # anyone on the machine could point this shell at their database

    values, hint = run_env.read_live(path)

    assert values is None and "not private to you" in hint


def test_a_stale_run_env_is_ignored_with_a_hint_to_start_make_run(tmp_path):
    path = tmp_path / run_env.FILE_NAME
    run_env.write(path, {"DATABASE_URL": "postgresql://x@/assistant"}, pid=_dead_pid())
    environ = {"VAR_DIR": str(tmp_path)}

    hint = run_env.load_into(environ, tmp_path)

    assert environ == {"VAR_DIR": str(tmp_path)}
    assert "no longer running" in hint and "make run" in hint


def test_a_run_env_whose_pid_now_belongs_to_another_process_is_stale(tmp_path):
    path = tmp_path / run_env.FILE_NAME
    run_env.write(path, {"DATABASE_URL": "postgresql://x@/assistant"}, pid=os.getpid())
    text = path.read_text()
    started = run_env.parse(text)[run_env.STARTED_KEY]
    path.write_text(text.replace(f"={started}", "=1000.0"))  # another process, same pid

    values, hint = run_env.read_live(path)

    assert values is None and "no longer running" in hint


@pytest.mark.parametrize(
    "explicit",
    [
        {"DEBUG": "0"},
        {"DEBUG": "false"},
        {"DEBUG": " Off "},
        {"DEBUG": ""},  # set, but empty: not ours to complete
        {"DEBUG": "prod"},  # a typo never turns into DEBUG=1
        {"DATABASE_URL": "postgresql://prod@db/assistant"},
    ],
)
def test_an_explicit_configuration_never_reads_run_env(tmp_path, explicit):
    path = tmp_path / run_env.FILE_NAME
    run_env.write(
        path,
        {
            "DATABASE_URL": "postgresql://dev@/assistant",
            "DEBUG": "1",
            "REDIS_URL": "redis://127.0.0.1:6381/0",
        },
        pid=os.getpid(),
    )
    environ = {"VAR_DIR": str(tmp_path), **explicit}

    assert run_env.load_into(environ, tmp_path) is None
    assert environ == {"VAR_DIR": str(tmp_path), **explicit}


def test_without_configuration_run_env_completes_the_environment_and_what_is_set_wins(tmp_path):
    path = tmp_path / run_env.FILE_NAME
    run_env.write(
        path,
        {
            "DATABASE_URL": "postgresql://dev@/assistant",
            "DEBUG": "1",
            "REDIS_URL": "redis://127.0.0.1:6381/0",
        },
        pid=os.getpid(),
    )
    environ = {"VAR_DIR": str(tmp_path), "REDIS_URL": "redis://mine:6379/0"}

    assert run_env.load_into(environ, tmp_path) is None
    assert environ["DATABASE_URL"] == "postgresql://dev@/assistant"
    assert environ["DEBUG"] == "1"
    assert environ["REDIS_URL"] == "redis://mine:6379/0"
    assert run_env.PID_KEY not in environ


def test_with_no_run_env_and_no_configuration_the_hint_says_to_start_make_run(tmp_path):
    hint = run_env.load_into({"VAR_DIR": str(tmp_path)}, tmp_path)

    assert "No `make run` is running" in hint


def test_run_env_is_removed_only_by_the_launcher_that_wrote_it(tmp_path):
    path = tmp_path / run_env.FILE_NAME
    run_env.write(path, {"DEBUG": "1"}, pid=os.getpid())

    run_env.remove(path, pid=os.getpid() + 1)
    assert path.exists()
    run_env.remove(path, pid=os.getpid())
    assert not path.exists()


# -- the port-in-use error and the sign-in box ---------------------------------------------------


def test_a_port_in_use_is_refused_naming_what_holds_it_and_what_to_do():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]

        message = port_taken_message(port, "EMBEDDED_REDIS_PORT", what="Redis")

    assert f"Port {port} (EMBEDDED_REDIS_PORT, for Redis) is already in use" in message
    assert f"(pid {os.getpid()})" in message
    assert "make run" in message and "EMBEDDED_REDIS_PORT=<port>" in message


def test_the_sign_in_box_frames_every_line_at_one_width():
    box = sign_in_box(
        8000, ["Demo admin created - this is shown once:", "  password: x"], state="healthy"
    )
    lines = box.splitlines()

    assert len({len(line) for line in lines}) == 1
    assert lines[0].startswith("\u250c") and lines[-1].startswith("\u2514")
    assert "http://127.0.0.1:8000/accounts/login/" in box
    assert boxed(["a", "bcd"], ascii_only=True) == "+-----+\n| a   |\n| bcd |\n+-----+"


def test_a_failing_management_command_still_shows_what_it_printed(capfd):
    """The demo admin's new password is printed once; if the command fails after printing it,
    the launcher shows the output before the error, or the password would be lost."""
    script = "print('Password: s3cret-once'); raise SystemExit(3)"

    with pytest.raises(subprocess.CalledProcessError):
        manage_output(dict(os.environ), "shell", "--no-imports", "-c", script)

    assert "Password: s3cret-once" in capfd.readouterr().out


# -- the topology: `run --web N --workers M` -------------------------------------------------------


def test_one_web_process_serves_on_port_and_several_sit_behind_the_proxy_on_the_next_ports():
    assert web_ports(8000, 1) == [8000]
    assert web_ports(8000, 3) == [8000, 8001, 8002, 8003]  # nginx first, then each Daphne


def test_one_worker_is_started_exactly_as_before(tmp_path):
    argv = worker_argv(tmp_path, {"WORKER_CONCURRENCY": "3"}, index=1, count=1)

    assert argv == [
        str(tmp_path / "celery"),
        *("-A", "assistant", "worker", "-Q", "default,ingest", "--concurrency", "3"),
        *("--loglevel", "INFO"),
    ]
    assert daphne_argv(tmp_path, 8000) == [
        str(tmp_path / "daphne"),
        *("-b", "127.0.0.1", "-p", "8000", "--proxy-headers"),
        "assistant.project.asgi:application",
    ]


def test_several_workers_have_distinct_names_and_split_the_queues(tmp_path):
    argvs = [worker_argv(tmp_path, {}, index=i, count=3) for i in (1, 2, 3)]

    assert [argv[argv.index("-n") + 1] for argv in argvs] == ["w1@%h", "w2@%h", "w3@%h"]
    # Answers never wait behind indexing; every queue has a worker.
    assert [argv[argv.index("-Q") + 1] for argv in argvs] == ["default", "ingest", "default"]


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "assistant.embedded", "run", *args],
        cwd=BASE_DIR,
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("count", ["0", "-1", "two", "17", "1e3"])
def test_a_nonsense_number_of_processes_is_refused_before_anything_starts(tmp_path, count):
    done = _run("--web", count, VAR_DIR=str(tmp_path))

    assert done.returncode == 2
    assert "a number of processes from 1 to 16 is expected" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "pgdata").exists()


def test_several_web_processes_without_nginx_stop_before_anything_starts(tmp_path):
    done = _run("--web", "2", VAR_DIR=str(tmp_path), EMBEDDED_NGINX=str(tmp_path / "no-such-nginx"))

    assert done.returncode == 1
    assert "EMBEDDED_NGINX=" in done.stderr and "not a program that can run" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "pgdata").exists()


def test_the_missing_nginx_message_says_how_to_install_it():
    message = proxy.missing_nginx_message(2, {})

    assert "make system-deps" in message and "apt-get install -y nginx" in message
    assert "--web 1" in message


def test_run_documents_both_flags_in_its_help():
    done = _run("--help")

    assert done.returncode == 0
    assert "--web N" in done.stdout and "--workers M" in done.stdout
    assert "nginx" in done.stdout


def test_a_taken_port_behind_the_proxy_is_refused_naming_it_before_anything_starts(tmp_path):
    with socket.socket() as held:
        for port in free_ports(10):
            with contextlib.suppress(OSError):  # PORT+2 may be taken already, or past 65535
                held.bind(("127.0.0.1", port + 2))
                break
        held.listen()

        done = _run(
            "--web",
            "2",
            VAR_DIR=str(tmp_path),
            PORT=str(port),
            EMBEDDED_NGINX="/bin/true",  # found; never started, the port check comes first
        )

    assert done.returncode == 1
    assert f"Port {port + 2} (PORT+2, for the web server) is already in use" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "pgdata").exists()
