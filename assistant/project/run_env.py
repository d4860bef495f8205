"""``VAR_DIR/run.env``: what a second terminal needs to reach the stack ``make run`` started.

The launcher writes it (mode 0600) once its services are up and removes it when it stops;
``manage.py`` reads it so that ``.venv/bin/python manage.py createsuperuser`` in another terminal
just works. The file is read only when the environment carries no explicit configuration:
``DEBUG`` set to a false value or ``DATABASE_URL`` set means someone configured this process on
purpose (production, a test), and a development stack must never take its place. A file whose
launcher is gone (killed, machine rebooted) is ignored.

Plain Python, no Django: ``manage.py`` reads it before settings load, and the launcher (which
must not import the app's settings) writes it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, MutableMapping
from contextlib import suppress
from pathlib import Path

FILE_NAME = "run.env"
# Bookkeeping lines: who wrote the file, never exported to a process.
PID_KEY = "LAUNCHER_PID"
STARTED_KEY = "LAUNCHER_STARTED"
# An explicit configuration, which the file never overrides or completes.
EXPLICIT_KEYS = ("DATABASE_URL",)
# DEBUG with any other value (off, empty, a typo) is someone else's configuration, never ours.
_TRUE = {"1", "true", "yes", "on"}


def path_for(environ: Mapping[str, str], base_dir: Path) -> Path:
    """Where the file lives: under ``VAR_DIR``, as the launcher and settings resolve it."""
    return Path(environ.get("VAR_DIR") or base_dir / "var").resolve() / FILE_NAME


def process_started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None if it is not running.

    The start time tells a live launcher from an unrelated process that got its pid later.
    """
    try:
        import psutil
    except ImportError:  # an install without the dev tools: liveness by signal 0 only
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return 0.0
        return 0.0
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def write(path: Path, values: Mapping[str, str], *, pid: int) -> None:
    """Writes the file for the launcher ``pid`` (readable by its owner only: it may hold keys)."""
    started = process_started(pid)
    lines = [
        "# Written by `make run` for commands in a second terminal (manage.py reads it);",
        "# removed when it stops. Edit nothing here: set variables in your shell instead.",
        f"{PID_KEY}={pid}",
        f"{STARTED_KEY}={started or 0}",
    ]
    for key, value in sorted(values.items()):
        if "\n" in value or "\r" in value:
            continue  # one line per variable: such a value cannot be written, so it is left out
        lines.append(f"{key}={value}")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    with suppress(FileNotFoundError):
        temporary.unlink()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    temporary.replace(path)  # a reader never sees half a file


def remove(path: Path, *, pid: int) -> None:
    """Removes the file if launcher ``pid`` wrote it (a newer launcher's file stays)."""
    with suppress(FileNotFoundError, OSError):
        if parse(path.read_text(encoding="utf-8")).get(PID_KEY) == str(pid):
            path.unlink()


def parse(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value
    return values


def is_explicitly_configured(environ: Mapping[str, str]) -> bool:
    debug = environ.get("DEBUG")
    if debug is not None and debug.strip().lower() not in _TRUE:
        return True
    return any((environ.get(key) or "").strip() for key in EXPLICIT_KEYS)


def read_live(path: Path) -> tuple[dict[str, str] | None, str | None]:
    """The file's variables if the launcher that wrote it still runs, else (None, a hint).

    (None, None) when there is no file at all.
    """
    try:
        info = path.stat()
        values = parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"{path} cannot be read ({exc.strerror}); ignoring it."
    # It names the database to use: only a file nobody else could have written is trusted.
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None, (
            f"{path} is not private to you (owner or mode changed); ignoring it. "
            "Restart `make run` to write it again."
        )
    stale = (
        f"{path} is left over from a `make run` that is no longer running; ignoring it. "
        "Start `make run` in another terminal, then run this command again."
    )
    try:
        pid = int(values.pop(PID_KEY, ""))
        started = float(values.pop(STARTED_KEY, "0") or 0)
    except ValueError:
        return None, stale
    now_started = process_started(pid)
    # The same pid with another start time is another process that reused the number.
    if now_started is None or (started and now_started and abs(now_started - started) > 1):
        return None, stale
    return values, None


def load_into(environ: MutableMapping[str, str], base_dir: Path) -> str | None:
    """Completes ``environ`` from a live ``run.env`` unless it is explicitly configured.

    Variables already set win over the file's. Returns a one-line hint to show when a file was
    found but ignored, or when there is neither a file nor a configuration; else None.
    """
    if is_explicitly_configured(environ):
        return None
    path = path_for(environ, base_dir)
    values, hint = read_live(path)
    if values is None and hint is None and environ.get("DEBUG") is None:
        # Nothing configured and nothing to read: the settings are about to stop on a missing
        # SECRET_KEY, which does not say that `make run` is what this terminal lacks.
        hint = (
            f"No `make run` is running for {path.parent} (no {FILE_NAME} there): start it in "
            "another terminal, or configure this shell (DEBUG=1 for development; DATABASE_URL, "
            "REDIS_URL and SECRET_KEY for production)."
        )
    if values:
        for key, value in values.items():
            environ.setdefault(key, value)
    return hint
