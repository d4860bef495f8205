"""A real SAML 2.0 identity provider for tests: pysaml2's IdP (tests/support/saml/idp.py).

    idp = SAMLTestIdP()                 # keys made, port chosen, nothing running yet
    idp.start()                         # serves its metadata at idp.metadata_url
    idp.register_sp(metadata_xml)       # the SP's metadata, as an administrator uploads it
    idp.set_accounts({"ada": {"mail": ["ada@example.com"], "groups": ["engineering"]}})
    idp.set_signing("assertion")        # or both / response / none / foreign
    idp.stop()

Attributes use pysaml2's friendly names and are sent in the URI name format (``mail`` goes
out as ``urn:oid:0.9.2342.19200300.100.1.3``, ``displayName`` as
``urn:oid:2.16.840.1.113730.3.1.241``); names pysaml2 does not know (``groups``) go out as
they are. Signing needs the ``xmlsec1`` program (Debian package ``xmlsec1``).

The IdP listens on 127.0.0.1 but is addressed as ``localhost``: another site than the app at
127.0.0.1, so the browser treats its POST to the app as cross-site, as in production.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.support.processes import ManagedProcess, artifacts_dir, free_port

IDP_SCRIPT = Path(__file__).resolve().parent / "saml" / "idp.py"
SIGNING_MODES = ("assertion", "both", "response", "none", "foreign")


def self_signed_pair(name: str = "test") -> tuple[bytes, bytes]:
    """A fresh RSA key and self-signed certificate, PEM, made for this run only."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test saml idp ({name})")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def _key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    key_pem, cert_pem = self_signed_pair(name)
    key_path, cert_path = directory / f"{name}.key", directory / f"{name}.crt"
    key_path.write_bytes(key_pem)
    cert_path.write_bytes(cert_pem)
    return key_path, cert_path


class SAMLTestIdP:
    def __init__(self, *, port: int | None = None):
        if shutil.which("xmlsec1") is None:
            raise RuntimeError(
                "the SAML tests need the xmlsec1 program (apt-get install -y xmlsec1)"
            )
        self.port = port or free_port()
        self.base_url = f"http://localhost:{self.port}"
        self.entity_id = f"{self.base_url}/metadata"
        self.metadata_url = f"{self.base_url}/metadata"
        self.sso_url = f"{self.base_url}/sso/redirect"
        self.workdir = Path(tempfile.mkdtemp(prefix="saml-idp-", dir=artifacts_dir().parent))
        self.sp_dir = self.workdir / "sp"
        self.sp_dir.mkdir()
        self.key, self.cert = _key_pair(self.workdir, "signing")
        self.other_key, self.other_cert = _key_pair(self.workdir, "foreign")
        self.state_path = self.workdir / "state.json"
        self._state: dict = {"accounts": {}, "signing": "assertion"}
        self._write_state()
        self.process: ManagedProcess | None = None

    # --- what the tests change between sign-ins ---

    def set_accounts(self, accounts: dict) -> None:
        """Replaces the people the IdP knows: ``{login: {attribute: [values]}}``.

        The login becomes the persistent NameID (the app's SocialAccount uid).
        """
        self._state["accounts"] = accounts
        self._write_state()

    def set_signing(self, mode: str) -> None:
        if mode not in SIGNING_MODES:
            raise ValueError(f"signing mode must be one of {SIGNING_MODES}")
        self._state["signing"] = mode
        self._write_state()

    def register_sp(self, metadata_xml: str, *, name: str = "sp") -> None:
        """Registers a service provider from its metadata (as an admin would upload it)."""
        temporary = self.sp_dir / f"{name}.xml.tmp"
        temporary.write_text(metadata_xml)
        temporary.replace(self.sp_dir / f"{name}.xml")

    def _write_state(self) -> None:
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self._state))
        temporary.replace(self.state_path)

    # --- configuration handed to the app ---

    def certificate_pem(self) -> str:
        return self.cert.read_text()

    def django_env(self, **extra: str) -> dict[str, str]:
        """The environment pointing the app at this IdP through its metadata URL."""
        return {"SAML_IDP_METADATA_URL": self.metadata_url, **extra}

    def django_env_without_metadata(self, **extra: str) -> dict[str, str]:
        """The same IdP given by hand: entity id, SSO URL and signing certificate."""
        return {
            "SAML_IDP_ENTITY_ID": self.entity_id,
            "SAML_IDP_SSO_URL": self.sso_url,
            "SAML_IDP_X509_CERT": self.certificate_pem(),
            **extra,
        }

    # --- the process ---

    def start(self) -> None:
        env = dict(os.environ)
        env.update(
            {
                "SAML_TEST_PORT": str(self.port),
                "SAML_TEST_BASE_URL": self.base_url,
                "SAML_TEST_KEY": str(self.key),
                "SAML_TEST_CERT": str(self.cert),
                "SAML_TEST_OTHER_KEY": str(self.other_key),
                "SAML_TEST_OTHER_CERT": str(self.other_cert),
                "SAML_TEST_SP_DIR": str(self.sp_dir),
                "SAML_TEST_STATE": str(self.state_path),
            }
        )
        argv = [sys.executable, str(IDP_SCRIPT)]
        self.process = ManagedProcess("saml-idp", argv, env, artifacts_dir() / "saml-idp.log")
        self._wait_until_ready()

    def _wait_until_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise RuntimeError(f"the SAML IdP exited early:\n{self.process.log_tail()}")
            try:
                with urllib.request.urlopen(self.metadata_url, timeout=1) as response:  # noqa: S310 - loopback
                    if self.entity_id.encode() in response.read():
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the SAML IdP did not answer in {timeout}s:\n{self.process.log_tail()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)
