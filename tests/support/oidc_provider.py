"""A real OpenID Connect provider for tests: npm ``oidc-provider`` run by Node on 127.0.0.1.

    provider = OIDCTestProvider(accounts={"ada": {"email": "ada@example.com", ...}})
    provider.start(redirect_uris=[...], post_logout_redirect_uris=[...])
    provider.set_accounts({...})     # takes effect at the next sign-in
    provider.stop()

``sign_in_with_test_client`` drives the whole authorization-code flow with Django's test client
on the app's side (in-process: fast, and the ORM is the test's) and httpx at the provider.

The package is pinned in tests/support/oidc/package.json (+ package-lock.json) and installed
with ``npm ci`` the first time (or by ``make test``'s step, see the Makefile).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from tests.support.processes import ManagedProcess, artifacts_dir, free_port

PACKAGE_DIR = Path(__file__).resolve().parent / "oidc"
CLIENT_ID = "assistant-tests"
CLIENT_SECRET = "assistant-tests-secret-not-a-real-one"  # noqa: S105 - a test fixture
TEST_CLIENT_ORIGIN = "http://testserver"  # where Django's test client says it is
_FORM_ACTION_RE = re.compile(r'<form[^>]*action="([^"]+)"')


def ensure_installed() -> None:
    """Runs ``npm ci`` in tests/support/oidc when its node_modules is missing."""
    if (PACKAGE_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            "the SSO tests need Node.js >= 20 and npm (apt-get install -y nodejs npm)"
        )
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=PACKAGE_DIR,
        check=True,
        timeout=300,
    )


class OIDCTestProvider:
    def __init__(self, *, accounts: dict | None = None, port: int | None = None):
        self.port = port or free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.client_id = CLIENT_ID
        self.client_secret = CLIENT_SECRET
        self.accounts_path = (
            artifacts_dir().parent / f"oidc-accounts-{os.getpid()}-{self.port}.json"
        )
        self.set_accounts(accounts or {})
        self.process: ManagedProcess | None = None

    def set_accounts(self, accounts: dict) -> None:
        """Replaces the people the provider knows, keyed by the login typed at sign-in.

        Each value holds claims (email, email_verified, name, preferred_username, groups...);
        ``sub`` is the login. Written atomically: the provider re-reads it on every lookup.
        """
        temporary = self.accounts_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(accounts))
        temporary.replace(self.accounts_path)

    def django_env(self, **extra: str) -> dict[str, str]:
        """The environment that points the app at this provider (single-provider form)."""
        return {
            "OIDC_SERVER_URL": self.issuer,
            "OIDC_CLIENT_ID": self.client_id,
            "OIDC_CLIENT_SECRET": self.client_secret,
            **extra,
        }

    def start(self, *, redirect_uris: list[str], post_logout_redirect_uris: list[str] = ()) -> None:
        ensure_installed()
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("the SSO tests need Node.js >= 20")
        env = dict(os.environ)
        env.update(
            {
                "OIDC_TEST_PORT": str(self.port),
                "OIDC_TEST_CLIENT_ID": self.client_id,
                "OIDC_TEST_CLIENT_SECRET": self.client_secret,
                "OIDC_TEST_REDIRECT_URIS": ",".join(redirect_uris),
                "OIDC_TEST_POST_LOGOUT_URIS": ",".join(post_logout_redirect_uris),
                "OIDC_TEST_ACCOUNTS": str(self.accounts_path),
                "NODE_ENV": "test",
            }
        )
        argv = [node, str(PACKAGE_DIR / "provider.mjs")]
        self.process = ManagedProcess(
            "oidc-provider", argv, env, artifacts_dir() / "oidc-provider.log"
        )
        self._wait_until_ready()

    def _wait_until_ready(self, timeout: float = 20) -> None:
        url = f"{self.issuer}/.well-known/openid-configuration"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise RuntimeError(f"oidc-provider exited early:\n{self.process.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
                    if json.load(response).get("issuer") == self.issuer:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(
            f"oidc-provider did not answer in {timeout}s:\n{self.process.log_tail()}"
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
        self.accounts_path.unlink(missing_ok=True)


def callback_url_for_test_client(provider_id: str) -> str:
    """The redirect URI allauth sends when the app runs under Django's test client."""
    return f"{TEST_CLIENT_ORIGIN}/accounts/oidc/{provider_id}/login/callback/"


def sign_in_with_test_client(client, provider: OIDCTestProvider, *, provider_id: str, login: str):
    """Signs ``login`` in through ``provider`` (started with ``callback_url_for_test_client``).

    The app's side runs in ``client`` (Django's test client): the sign-in button's POST, then
    the callback, where allauth exchanges the code at the provider over real HTTP. The
    provider's side (its login page, any password) runs in httpx. Returns the callback's
    response: a redirect into the app when signed in, or the refusal page.
    """
    start = client.post(f"/accounts/oidc/{provider_id}/login/")
    assert start.status_code == 302, start.content[:500]
    with httpx.Client(timeout=10) as browser:
        response = _follow_at_provider(browser, browser.get(start["Location"]))
        match = _FORM_ACTION_RE.search(response.text)
        assert match, f"no login form at the provider: {response.text[:500]}"
        response = browser.post(
            urljoin(str(response.url), match.group(1)),
            data={"prompt": "login", "login": login, "password": "any password works here"},
        )
        response = _follow_at_provider(browser, response)
    location = response.headers.get("location", "")
    assert location.startswith(TEST_CLIENT_ORIGIN), f"provider said: {response.text[:500]}"
    parts = urlsplit(location)
    return client.get(f"{parts.path}?{parts.query}")


def _follow_at_provider(browser: httpx.Client, response: httpx.Response) -> httpx.Response:
    """Follows redirects while they stay at the provider; stops at a page or at the app."""
    for _ in range(10):
        location = response.headers.get("location")
        if not response.is_redirect or not location:
            return response
        target = urljoin(str(response.url), location)
        if target.startswith(TEST_CLIENT_ORIGIN):
            return response
        response = browser.get(target)
    raise AssertionError("too many redirects at the provider")
