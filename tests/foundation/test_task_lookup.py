"""Looking a task up by name (assistant/project/tasking.py) in a web process, where no task module
is imported until the first answer finishes."""

import os
import subprocess
import sys

from tests.support.processes import BASE_DIR

# A fresh interpreter: in the test process the task modules are imported already.
FIRST_LOOKUPS_AT_ONCE = """
import threading
from concurrent.futures import ThreadPoolExecutor

import django

django.setup()
from assistant.project import tasking

at_once = threading.Barrier(6)


def look_up(_):
    at_once.wait()
    try:
        return tasking._task("assistant.after_turn").name
    except Exception as exc:
        return repr(exc)


with ThreadPoolExecutor(6) as pool:
    print(sorted(set(pool.map(look_up, range(6)))))
"""


def test_answers_finishing_at_once_in_a_fresh_web_process_all_find_their_task():
    """Found by bench/chat_load.py: the first answers to finish together after a web process
    started failed ("never registered") while one thread was still importing the task modules
    the others then looked up."""
    done = subprocess.run(
        [sys.executable, "-c", FIRST_LOOKUPS_AT_ONCE],
        cwd=BASE_DIR,
        # What a web process runs (as `make run` and production start it).
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "assistant.project.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "['assistant.after_turn']"
