"""The project's settings for the test suite: production's, with one change.

Passwords are hashed with MD5 instead of PBKDF2's million rounds (about half a second a hash on
these cores, paid by every test that creates or signs in a person with a password). The hash
is not what the tests are about; the rules around it (brute-force budget, sign-in) are. Daphne
and Celery processes started by the tests inherit this module through DJANGO_SETTINGS_MODULE,
so they verify the same hashes.
"""

from assistant.project.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
