"""A real OpenID Connect provider for tests: npm ``oidc-provider`` run by Node on 127.0.0.1.

    provider = OIDCTestProvider(accounts={"ada": {"email": "ada@example.com", ...}})
    provider.start(redirect_uris=[...], post_logout_redirect_uris=[...])
    provider.set_accounts({...})     # takes effect at the next sign-in
    provider.stop()

The package is pinned in tests/support/oidc/package.json (+ package-lock.json) and installed
with ``npm ci`` the first time (or by ``make test``'s step, see the Makefile).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.support.processes import ManagedProcess, artifacts_dir, free_port

PACKAGE_DIR = Path(__file__).resolve().parent / "oidc"
CLIENT_ID = "assistant-tests"
CLIENT_SECRET = "assistant-tests-secret-not-a-real-one"  # noqa: S105 - a test fixture


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
