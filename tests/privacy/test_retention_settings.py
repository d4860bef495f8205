"""RETENTION_* are read like every setting: nonsense stops the app at start, naming it."""

import os
import subprocess
import sys

import pytest

from tests.support.processes import BASE_DIR


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RETENTION_CONVERSATION_DAYS", "a month"),
        ("RETENTION_AUDIT_DAYS", "0"),  # 0 would delete everything written before now
        ("RETENTION_BATCH_SIZE", "-5"),
        ("TOKEN_OWNER_SIGN_IN_DAYS", "0"),  # 0 would refuse every token at once
        ("TOKEN_OWNER_SIGN_IN_DAYS", "a month"),
    ],
)
def test_a_bad_retention_setting_fails_at_start_naming_it(name, value):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update({"DEBUG": "1", name: value})
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr.splitlines()[-1]
