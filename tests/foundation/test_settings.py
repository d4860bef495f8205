"""Settings fail loudly, naming the variable, and production settings pass check --deploy."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
GOOD_KEY = "k" * 20 + "-production-secret-" + "z" * 30


def run_django(env_overrides: dict, *args: str) -> subprocess.CompletedProcess:
    # DJANGO_ALLOW_ASYNC_UNSAFE may be set by browser tests in this process; not in production.
    dropped = ("DEBUG", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(env_overrides)
    argv = [sys.executable, "manage.py", *(args or ("check",))]
    return subprocess.run(argv, env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"DEBUG": "1", "DATABASE_URL": "mysql://nope"}, "DATABASE_URL"),
        ({"DEBUG": "1", "DATABASE_URL": "postgresql://u@h"}, "DATABASE_URL"),
        ({"DEBUG": "1", "DATABASE_URL": "postgresql://u@h:notaport/db"}, "DATABASE_URL"),
        ({"DEBUG": "1", "REDIS_URL": "localhost:6379"}, "REDIS_URL"),
        ({"DEBUG": "1", "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"DEBUG": "1", "CELERY_TASK_TIME_LIMIT": "soon"}, "CELERY_TASK_TIME_LIMIT"),
        ({"DEBUG": "1", "CSRF_TRUSTED_ORIGINS": "example.com"}, "CSRF_TRUSTED_ORIGINS"),
        ({"DEBUG": "1", "WEBSOCKET_ALLOWED_ORIGINS": "example.com"}, "WEBSOCKET_ALLOWED_ORIGINS"),
        (
            {"DEBUG": "1", "WEBSOCKET_ALLOWED_ORIGINS": "https://*.example.com"},
            "WEBSOCKET_ALLOWED_ORIGINS",
        ),
        ({"DEBUG": "1", "METRICS_PUBLIC": "sometimes"}, "METRICS_PUBLIC"),
        ({"DEBUG": "1", "HEALTH_WORKER_CHECK_SECONDS": "-1"}, "HEALTH_WORKER_CHECK_SECONDS"),
        ({"DEBUG": "0"}, "SECRET_KEY"),
        ({"DEBUG": "0", "SECRET_KEY": "short"}, "SECRET_KEY"),
    ],
)
def test_bad_configuration_fails_at_start_naming_the_variable(overrides, named):
    result = run_django(overrides)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert named in result.stderr.splitlines()[-1]


def test_production_settings_pass_check_deploy_without_warnings():
    result = run_django(
        {
            "DEBUG": "0",
            "SECRET_KEY": GOOD_KEY,
            "ALLOWED_HOSTS": "assistant.example.com",
            "CSRF_TRUSTED_ORIGINS": "https://assistant.example.com",
        },
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def import_settings(environ: dict, code: str = "") -> subprocess.CompletedProcess:
    """Imports the settings module alone in a fresh process whose environment lacks what the
    launcher sets (DATABASE_URL, REDIS_URL), plus ``environ``; then runs ``code`` (``s``)."""
    dropped = ("DEBUG", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE", "DATABASE_URL", "REDIS_URL")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(environ)
    argv = [sys.executable, "-c", "import assistant.project.settings as s\n" + code]
    return subprocess.run(argv, env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({"REDIS_URL": "redis://cache.example.com:6379/0"}, "DATABASE_URL"),
        ({"REDIS_URL": "redis://cache.example.com:6379/0", "DATABASE_URL": ""}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://app@db.example.com/assistant"}, "REDIS_URL"),
    ],
)
def test_production_never_falls_back_to_the_embedded_database_or_redis(environ, missing):
    result = import_settings({"DEBUG": "0", "SECRET_KEY": GOOD_KEY, **environ})
    assert result.returncode != 0
    last_line = result.stderr.splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured: "), result.stderr
    assert f"{missing} must be set when DEBUG=0, e.g. {missing}=" in last_line
    assert "`make run`" in last_line


def test_development_falls_back_to_the_embedded_database_and_redis(tmp_path):
    var_dir = tmp_path.resolve()
    code = "print(s.DATABASES['default']['HOST'], s.REDIS_URL)"
    result = import_settings(
        {"DEBUG": "1", "VAR_DIR": str(var_dir), "EMBEDDED_REDIS_PORT": "6390"}, code
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(var_dir / "pgdata"), "redis://127.0.0.1:6390/0"]


def test_production_uses_the_database_and_redis_it_is_given():
    code = "print(s.DATABASES['default']['HOST'], s.REDIS_URL)"
    result = import_settings(
        {
            "DEBUG": "0",
            "SECRET_KEY": GOOD_KEY,
            "DATABASE_URL": "postgresql://app@db.example.com/assistant",
            "REDIS_URL": "redis://cache.example.com:6379/0",
        },
        code,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["db.example.com", "redis://cache.example.com:6379/0"]
