#!/usr/bin/env python
import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent


def use_the_project_venv() -> None:
    """``python manage.py`` with a Python that lacks Django (the system's) runs again with the
    project's ``.venv`` (what ``make install`` built), as the README's commands expect."""
    try:
        import django  # noqa: F401
    except ImportError:
        venv_python = BASE_DIR / ".venv" / "bin" / "python"
        if venv_python.exists() and Path(sys.executable) != venv_python:
            os.execv(venv_python, [str(venv_python), *sys.argv])  # noqa: S606 - our own venv
        raise SystemExit(
            "Django is not installed for this Python. Run `make install`, then "
            "`.venv/bin/python manage.py ...`."
        ) from None


def main() -> None:
    use_the_project_venv()
    from assistant.project import run_env

    # Beside a running `make run`, reach its stack (never when configured explicitly).
    hint = run_env.load_into(os.environ, BASE_DIR)
    if hint:
        print(hint, file=sys.stderr)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
