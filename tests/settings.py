"""The project's settings for the test suite: production's, with two changes.

Passwords are hashed with MD5 instead of PBKDF2's million rounds (about half a second a hash on
these cores, paid by every test that creates or signs in a person with a password). The hash
is not what the tests are about; the rules around it (brute-force budget, sign-in) are. Daphne
and Celery processes started by the tests inherit this module through DJANGO_SETTINGS_MODULE,
so they verify the same hashes.
"""

import os
from urllib.parse import urlsplit, urlunsplit

# Under pytest-xdist each test process (gw0, gw1, ...) gets its own Redis database, so its Celery
# queues, channel groups, cache and rate limits never meet another's (pytest-django already
# gives each its own test database). Set in the environment before production's settings read
# it, so the Daphne and Celery processes a test starts inherit the same database.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _XDIST_WORKER.startswith("gw") and os.environ.get("REDIS_URL"):
    _redis = urlsplit(os.environ["REDIS_URL"])
    os.environ["REDIS_URL"] = urlunsplit(_redis._replace(path=f"/{int(_XDIST_WORKER[2:]) + 1}"))

from assistant.project.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
