"""The Django settings ``assistant/project/settings.py`` makes of a given environment, in this process.

Not a test module: a helper for tests that check what an operator's variables become (the
tests/accounts SSO settings tests, tests/security/test_sso.py).
"""

from __future__ import annotations

import os
import runpy
from pathlib import Path
from unittest import mock

from assistant.project.env import Env

SETTINGS_FILE = Path(__file__).resolve().parents[2] / "assistant" / "project" / "settings.py"
# What settings.py requires with DEBUG=0; none of it is ever connected to.
PRODUCTION_ENVIRON = {
    "SECRET_KEY": "k" * 20 + "-production-secret-" + "z" * 30,
    "DATABASE_URL": "postgresql://assistant@db.example.com:5432/assistant",
    "REDIS_URL": "redis://cache.example.com:6379/0",
}


def django_settings(env: Env, *, debug: bool) -> dict:
    """Every setting settings.py defines when the process environment is ``env``'s variables
    plus ``DEBUG`` and PRODUCTION_ENVIRON; raises what settings.py raises (ImproperlyConfigured).

    settings.py reads ``os.environ``, so it is replaced for the moment settings.py runs.
    """
    environ = {**PRODUCTION_ENVIRON, "DEBUG": "1" if debug else "0", **env.environ}
    with mock.patch.dict(os.environ, environ, clear=True):
        return runpy.run_path(str(SETTINGS_FILE))
