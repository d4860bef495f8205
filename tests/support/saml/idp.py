"""A SAML 2.0 identity provider for the SAML tests, built on pysaml2's ``saml2.server.Server``.

pysaml2 (the SAML library behind SATOSA and djangosaml2idp) parses and checks the
AuthnRequest (known SP, registered ACS URL, destination), builds the Response and signs it
with the ``xmlsec1`` program; this file only adds the HTTP around it:

    GET  /metadata        the IdP's metadata (entity id, SSO URLs, signing certificate)
    GET  /sso/redirect    HTTP-Redirect binding: shows the sign-in form
    POST /sso/post        HTTP-POST binding: the same
    POST /login           checks the person, answers the SP with an auto-posting form

Configured by environment variables (see tests/support/saml_idp.py, which starts it):
SAML_TEST_PORT, SAML_TEST_BASE_URL, SAML_TEST_KEY / SAML_TEST_CERT (the advertised signing
pair), SAML_TEST_OTHER_KEY / SAML_TEST_OTHER_CERT (a pair nobody trusts), SAML_TEST_SP_DIR (a
folder of SP metadata files: the service providers registered here, re-read when it changes)
and SAML_TEST_STATE (a JSON file re-read at every sign-in:
``{"accounts": {login: {attribute: [values]}}, "signing": "assertion"}``).

Any password is accepted; only the login must be known. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor
from saml2.s_utils import UnknownPrincipal, UnsupportedBinding
from saml2.saml import AUTHN_PASSWORD_PROTECTED, NAME_FORMAT_URI, NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server
from saml2.sigver import SignatureError
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

# How the Response is signed, per the state file's "signing":
#   assertion  the assertion only (what most providers do by default)
#   both       the response and the assertion
#   response   the response only (the assertion inside is unsigned)
#   none       nothing signed
#   foreign    the assertion, with a key that is not the one in the metadata
SIGNING_MODES = {
    "assertion": (False, True),
    "both": (True, True),
    "response": (True, False),
    "none": (False, False),
    "foreign": (False, True),
}

LOGIN_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Test SAML IdP: sign in</title></head>
<body>
  <h1>Test SAML IdP</h1>
  <p>Signing in to <span class="sp">{sp}</span></p>
  <form method="post" action="/login">
    <input type="hidden" name="SAMLRequest" value="{request}">
    <input type="hidden" name="binding" value="{binding}">
    <input type="hidden" name="RelayState" value="{relay_state}">
    <label>Login <input name="login" autocomplete="username"></label>
    <label>Password <input name="password" type="password"></label>
    <button type="submit">Sign in</button>
  </form>
</body></html>"""


def idp_config(base_url: str, *, key: str, cert: str, sp_metadata: list[str]) -> IdPConfig:
    config = IdPConfig()
    config.load(
        {
            "entityid": f"{base_url}/metadata",
            "service": {
                "idp": {
                    "name": "Test SAML IdP",
                    "endpoints": {
                        "single_sign_on_service": [
                            (f"{base_url}/sso/redirect", BINDING_HTTP_REDIRECT),
                            (f"{base_url}/sso/post", BINDING_HTTP_POST),
                        ]
                    },
                    "policy": {
                        "default": {
                            "lifetime": {"minutes": 5},
                            "attribute_restrictions": None,
                            "name_form": NAME_FORMAT_URI,
                        }
                    },
                    "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                    "want_authn_requests_signed": False,
                }
            },
            "key_file": key,
            "cert_file": cert,
            "metadata": {"local": sp_metadata},
            "xmlsec_binary": shutil.which("xmlsec1"),
            "delete_tmpfiles": True,
        }
    )
    return config


class IdentityProvider:
    def __init__(self, environ: dict):
        self.environ = environ
        self.base_url = environ["SAML_TEST_BASE_URL"]
        self.state_path = Path(environ["SAML_TEST_STATE"])
        self.sp_dir = Path(environ["SAML_TEST_SP_DIR"])
        self.config = idp_config(
            self.base_url,
            key=environ["SAML_TEST_KEY"],
            cert=environ["SAML_TEST_CERT"],
            sp_metadata=[],
        )
        self._servers_for: tuple = ()
        self._servers: tuple[Server, Server] | None = None
        self._lock = threading.Lock()

    def servers(self) -> tuple[Server, Server]:
        """pysaml2 servers that know the SPs registered now: (ours, one with a foreign key).

        The foreign one has the same entity id and metadata but another key: what an attacker
        without the IdP's key can produce.
        """
        files = sorted(self.sp_dir.glob("*.xml"))
        seen = tuple((str(f), f.stat().st_mtime_ns) for f in files)
        with self._lock:
            if self._servers is None or seen != self._servers_for:
                paths = [str(f) for f in files]
                self._servers = tuple(
                    Server(
                        config=idp_config(
                            self.base_url,
                            key=self.environ[key],
                            cert=self.environ[cert],
                            sp_metadata=paths,
                        )
                    )
                    for key, cert in (
                        ("SAML_TEST_KEY", "SAML_TEST_CERT"),
                        ("SAML_TEST_OTHER_KEY", "SAML_TEST_OTHER_CERT"),
                    )
                )
                self._servers_for = seen
            return self._servers

    def metadata(self) -> str:
        return str(entity_descriptor(self.config))

    def state(self) -> dict:
        return json.loads(self.state_path.read_text())

    def parse_request(self, saml_request: str, binding: str):
        return self.servers()[0].parse_authn_request(saml_request, binding).message

    def answer(self, authn_request, *, login: str, relay_state: str) -> str:
        """The auto-posting HTML form carrying the signed SAML Response to the SP's ACS."""
        state = self.state()
        attributes = state.get("accounts", {}).get(login)
        if attributes is None:
            raise UnknownPrincipal(login)
        mode = state.get("signing", "assertion")
        sign_response, sign_assertion = SIGNING_MODES[mode]
        ours, foreign = self.servers()
        server = foreign if mode == "foreign" else ours
        args = server.response_args(authn_request, [BINDING_HTTP_POST])
        args.pop("name_id_policy", None)
        destination = args.pop("destination")
        binding = args.pop("binding")
        response = server.create_authn_response(
            attributes,
            userid=login,
            name_id=NameID(
                format=NAMEID_FORMAT_PERSISTENT,
                text=login,
                name_qualifier=self.config.entityid,
                sp_name_qualifier=args["sp_entity_id"],
            ),
            authn={"class_ref": AUTHN_PASSWORD_PROTECTED, "authn_auth": self.config.entityid},
            destination=destination,
            sign_response=sign_response,
            sign_assertion=sign_assertion,
            sign_alg=SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA256,
            **args,
        )
        http_args = server.apply_binding(
            binding, str(response), destination, relay_state, response=True
        )
        return http_args["data"]


def make_handler(idp: IdentityProvider):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            url = urlsplit(self.path)
            if url.path == "/metadata":
                self.reply(200, idp.metadata(), "application/samlmetadata+xml")
            elif url.path == "/sso/redirect":
                self.login_form(parse_qs(url.query), BINDING_HTTP_REDIRECT)
            else:
                self.reply(404, "not found")

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode("ascii", "replace"))
            path = urlsplit(self.path).path
            if path == "/sso/post":
                self.login_form(form, BINDING_HTTP_POST)
            elif path == "/login":
                self.login(form)
            else:
                self.reply(404, "not found")

        def login_form(self, params: dict, binding: str):
            saml_request = params.get("SAMLRequest", [""])[0]
            try:
                request = idp.parse_request(saml_request, binding)
            except (
                SignatureError,
                UnknownPrincipal,
                UnsupportedBinding,
                ValueError,
                TypeError,
            ) as error:
                self.reply(400, f"bad AuthnRequest: {error!r}")
                return
            page = LOGIN_PAGE.format(
                sp=html.escape(request.issuer.text),
                request=html.escape(saml_request),
                binding=html.escape(binding),
                relay_state=html.escape(params.get("RelayState", [""])[0]),
            )
            self.reply(200, page, "text/html; charset=utf-8")

        def login(self, form: dict):
            def field(name: str) -> str:
                return form.get(name, [""])[0]

            try:
                request = idp.parse_request(field("SAMLRequest"), field("binding"))
                page = idp.answer(request, login=field("login"), relay_state=field("RelayState"))
            except UnknownPrincipal:
                self.reply(401, "unknown login")
                return
            self.reply(200, page, "text/html; charset=utf-8")

        def reply(self, status: int, body: str, content_type: str = "text/plain"):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            sys.stderr.write(f"saml-idp: {format % args}\n")

    return Handler


def main() -> None:
    idp = IdentityProvider(dict(os.environ))
    server = ThreadingHTTPServer(
        ("127.0.0.1", int(os.environ["SAML_TEST_PORT"])), make_handler(idp)
    )
    print(f"saml-idp listening at {idp.base_url}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
