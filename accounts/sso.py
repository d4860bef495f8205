"""Single sign-on configuration read from the environment (filled in by the SSO work)."""

from __future__ import annotations


def sso_settings(env, *, debug: bool) -> dict:
    """Returns the Django settings for SSO (allauth providers, domain and group rules)."""
    return {}
