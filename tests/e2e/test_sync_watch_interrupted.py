"""manage.py sync --watch as a real process: Ctrl-C (SIGINT) between runs ends it cleanly.

A real process because the test is about the signal: delivered to the test process itself, it
would interrupt pytest, not the command.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from knowledge.models import Source
from tests.support.knowledge import make_collection
from tests.support.processes import BASE_DIR, child_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_ctrl_c_stops_a_watching_sync_cleanly(tmp_path, admin):
    collection = make_collection("Drive", everyone=True)
    (tmp_path / "a.md").write_text("# A\n\nThe one file on the drive.")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "sync", str(tmp_path), "--collection", "Drive"]
        + ["--as", admin.email, "--watch", "--interval", "300", "--inline"],
        cwd=BASE_DIR,
        env=child_env(PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in process.stdout], daemon=True
    ).start()
    seen = []
    deadline = time.monotonic() + 180
    try:
        while not any(line.startswith("Synced") for line in seen):
            assert time.monotonic() < deadline, "".join(seen)
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                assert process.poll() is None, "".join(seen) + process.stderr.read()
        process.send_signal(signal.SIGINT)  # now waiting for its next run
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read()
    while not lines.empty():
        seen.append(lines.get())
    assert process.returncode == 0, "".join(seen) + stderr
    assert "Stopped." in "".join(seen)
    assert "Traceback" not in stderr
    assert Source.objects.get(collection=collection).status == Source.Status.READY
