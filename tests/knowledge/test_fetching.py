"""Safe URL fetching against real HTTP(S) servers on 127.0.0.1.

Loopback is refused by default, so each test that talks to the local server allows it
explicitly (allowed_hosts / allowed_networks), the way an operator would for an intranet.
"""

import datetime
import functools
import gzip
import ipaddress
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from knowledge import fetching
from knowledge.fetching import FetchedPage, FetchError, fetch_url, validate_url_syntax

LOCAL = {"allowed_networks": ["127.0.0.0/8"]}


@functools.cache
def gzip_bomb() -> bytes:
    """~50 KB that inflates to 50 MB."""
    return gzip.compress(b"\x00" * (50 * 2**20), compresslevel=9)


class Handler(BaseHTTPRequestHandler):
    """Routes by path; records (path, Host header) of every request it receives."""

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.server.seen.append((self.path, self.headers.get("Host")))
        url = urlsplit(self.path)
        route = getattr(
            self, "route_" + url.path.strip("/").replace("-", "_").replace(".", "_"), None
        )
        if route is None:
            return self.reply(404, b"missing", "text/plain")
        return route(parse_qs(url.query))

    def reply(self, status, body, content_type=None, **headers):
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def route_page_html(self, query):
        self.reply(200, b"<h1>Hello</h1>", "text/html; charset=utf-8")

    def route_guide_pdf(self, query):
        self.reply(200, b"%PDF-1.4 tiny", "application/pdf")

    def route_echo_host(self, query):
        self.reply(200, self.headers.get("Host", "").encode(), "text/plain")

    def route_image_png(self, query):
        self.reply(200, b"\x89PNG\r\n", "image/png")

    def route_untyped(self, query):
        self.reply(200, b"what am I")

    def route_redirect(self, query):
        self.reply(302, b"", "text/plain", Location=query["to"][0])

    def route_loop(self, query):
        self.reply(301, b"", "text/plain", Location="/loop")

    def route_big_declared(self, query):
        self.reply(200, b"x" * (2 * 2**20), "text/plain")

    def route_big_stream(self, query):  # no Content-Length: HTTP/1.0, ends when we close
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        for _ in range(32):
            self.wfile.write(b"y" * 65536)

    def route_gzip_bomb(self, query):
        self.reply(200, gzip_bomb(), "text/plain", Content_Encoding="gzip")

    def route_gzipped(self, query):
        self.reply(
            200, gzip.compress(b"# Notes\n\nsmall"), "text/markdown", Content_Encoding="gzip"
        )

    def route_slow(self, query):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        for _ in range(40):  # 0.25 s apart: never idle long enough to trip a read timeout
            self.wfile.write(b"z")
            self.wfile.flush()
            time.sleep(0.25)

    def route_error(self, query):
        self.reply(int(query["status"][0]), b"nope", "text/plain")


def serve(context: ssl.SSLContext | None = None) -> tuple[ThreadingHTTPServer, int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.seen = []
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


@pytest.fixture(scope="module")
def http_server() -> Iterator[tuple[ThreadingHTTPServer, str]]:
    server, port = serve()
    yield server, f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def server(http_server):
    server, base = http_server
    server.seen.clear()
    return server, base


@pytest.fixture
def fake_dns(monkeypatch):
    """Resolve made-up names to chosen addresses, counting lookups."""
    table: dict[str, list[str]] = {}
    lookups: list[str] = []
    real = fetching._resolve

    def resolve(host, port):
        lookups.append(host)
        return list(table[host]) if host in table else real(host, port)

    monkeypatch.setattr(fetching, "_resolve", resolve)
    return table, lookups


# --- the happy path --------------------------------------------------------------------


def test_it_fetches_an_allowed_local_page(server):
    srv, base = server
    page = fetch_url(f"{base}/page.html", **LOCAL)
    assert page == FetchedPage(
        url=f"{base}/page.html",
        content_type="text/html; charset=utf-8",
        data=b"<h1>Hello</h1>",
        status=200,
    )
    assert page.filename == "page.html"
    assert srv.seen[0][1] == base.removeprefix("http://")


def test_it_follows_redirects_and_reports_the_final_url(server):
    srv, base = server
    page = fetch_url(f"{base}/redirect?to=/guide.pdf", allowed_hosts=["127.0.0.1"])
    assert page.url == f"{base}/guide.pdf"
    assert page.filename == "guide.pdf"
    assert [path for path, _ in srv.seen] == ["/redirect?to=/guide.pdf", "/guide.pdf"]


def test_gzip_encoded_bodies_are_decoded(server):
    _, base = server
    assert fetch_url(f"{base}/gzipped", **LOCAL).data == b"# Notes\n\nsmall"


# --- addresses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "2130706433", "0x7f.0.0.1", "127.1"], ids=lambda h: h
)
def test_loopback_is_refused_by_default_in_all_its_spellings(server, host):
    srv, base = server
    port = base.rsplit(":", 1)[1]
    with pytest.raises(FetchError, match="private or local address"):
        fetch_url(f"http://{host}:{port}/page.html")
    assert srv.seen == []


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://[fd00::1]/",  # unique local
        "http://[::1]/",
        "http://[::ffff:10.0.0.1]/",  # IPv4-mapped
        "http://198.18.0.1/",  # benchmarking, reserved
        "http://240.0.0.1/",  # reserved
        "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
        "http://[2002:a00:1::1]/",  # 6to4 of 10.0.0.1
    ],
)
def test_private_and_reserved_addresses_are_refused(url):
    with pytest.raises(FetchError, match="private or local"):
        fetch_url(url, timeout=2)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://[fe80::1]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
    ],
)
def test_metadata_link_local_and_unspecified_addresses_are_refused_even_when_allowed(url):
    with pytest.raises(FetchError, match="never fetched"):
        fetch_url(
            url,
            timeout=2,
            allowed_networks=["0.0.0.0/0", "::/0", "169.254.0.0/16"],
            allowed_hosts=["169.254.169.254", "100.100.100.200"],
        )


def test_a_hostname_resolving_to_the_metadata_address_is_refused(fake_dns):
    table, _ = fake_dns
    table["metadata.evil.test"] = ["169.254.169.254"]
    with pytest.raises(FetchError, match="never fetched"):
        fetch_url("http://metadata.evil.test/", allowed_hosts=["metadata.evil.test"])


def test_a_host_is_refused_if_any_of_its_addresses_is_private(fake_dns):
    table, _ = fake_dns
    table["mixed.test"] = ["93.184.216.34", "10.0.0.7"]
    with pytest.raises(FetchError, match="10.0.0.7"):
        fetch_url("http://mixed.test/")


# --- redirects -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    ["http://10.1.2.3/secret", "http://192.168.0.10/", "http://localhost:{port}/page.html"],
)
def test_a_redirect_to_a_private_address_is_refused(server, target):
    srv, base = server
    target = target.format(port=base.rsplit(":", 1)[1])
    with pytest.raises(FetchError, match="private or local"):
        fetch_url(f"{base}/redirect?to={target}", allowed_hosts=["127.0.0.1"])
    assert len(srv.seen) == 1  # only the redirect itself was requested


def test_a_redirect_to_the_metadata_service_is_refused_even_with_everything_allowed(server):
    srv, base = server
    with pytest.raises(FetchError, match="never fetched"):
        fetch_url(
            f"{base}/redirect?to=http://169.254.169.254/latest/", allowed_networks=["0.0.0.0/0"]
        )
    assert len(srv.seen) == 1


def test_redirect_loops_stop(server):
    srv, base = server
    with pytest.raises(FetchError, match="more than 3 times"):
        fetch_url(f"{base}/loop", max_redirects=3, **LOCAL)
    assert len(srv.seen) == 4


def test_a_redirect_to_another_scheme_is_refused(server):
    _, base = server
    with pytest.raises(FetchError, match="Only http"):
        fetch_url(f"{base}/redirect?to=file:///etc/passwd", **LOCAL)


# --- bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/big-declared", "/big-stream", "/gzip-bomb"])
def test_bodies_over_the_size_cap_are_refused(server, path):
    _, base = server
    started = time.monotonic()
    with pytest.raises(FetchError, match="larger than the 1 MB limit"):
        fetch_url(base + path, max_bytes=2**20, **LOCAL)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("path", ["/image.png", "/untyped"])
def test_content_types_we_cannot_parse_are_refused(server, path):
    _, base = server
    with pytest.raises(FetchError, match="only web pages, text, Markdown, PDF and Word"):
        fetch_url(base + path, **LOCAL)


def test_a_server_that_drips_bytes_hits_the_overall_deadline(server):
    _, base = server
    started = time.monotonic()
    with pytest.raises(FetchError, match="too long") as caught:
        fetch_url(f"{base}/slow", timeout=1, **LOCAL)
    assert time.monotonic() - started < 3
    assert caught.value.transient


@pytest.mark.parametrize(
    ("status", "transient"), [(404, False), (403, False), (429, True), (503, True)]
)
def test_error_statuses_say_whether_a_retry_may_help(server, status, transient):
    _, base = server
    with pytest.raises(FetchError, match=f"answered {status}") as caught:
        fetch_url(f"{base}/error?status={status}", **LOCAL)
    assert caught.value.transient is transient


# --- URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/file.pdf", "Only http"),
        ("file:///etc/passwd", "Only http"),
        ("javascript:alert(1)", "Only http"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "Only http"),
        ("http:///nohost", "no host"),
        ("http://user:secret@example.com/", "user name or password"),
        ("http://exa mple.com/", "not a valid"),
    ],
)
def test_bad_urls_are_refused_before_any_network_access(url, message, fake_dns):
    _, lookups = fake_dns
    with pytest.raises(FetchError, match=message):
        validate_url_syntax(url)
    with pytest.raises(FetchError, match=message):
        fetch_url(url)
    assert lookups == []


def test_a_malformed_allowed_network_is_a_configuration_error():
    with pytest.raises(ValueError, match="does not appear to be"):
        fetch_url("http://example.com/", allowed_networks=["not-a-cidr"])


# --- pinning the connection to the checked address -------------------------------------


def test_it_connects_to_the_checked_address_with_the_original_host_header(server, fake_dns):
    srv, base = server
    table, lookups = fake_dns
    port = base.rsplit(":", 1)[1]
    table["wiki.corp.test"] = ["127.0.0.1"]
    # .test never resolves for real, so success proves the connection used our checked IP.
    page = fetch_url(f"http://wiki.corp.test:{port}/echo-host", allowed_hosts=[".corp.test"])
    assert page.data == f"wiki.corp.test:{port}".encode()
    assert page.url == f"http://wiki.corp.test:{port}/echo-host"
    assert lookups == ["wiki.corp.test"]  # one lookup: nothing to rebind between check and use


def test_a_suffix_allow_entry_does_not_match_lookalike_hosts(fake_dns):
    table, _ = fake_dns
    table["corp.test.evil.test"] = ["127.0.0.1"]
    with pytest.raises(FetchError, match="private or local"):
        fetch_url("http://corp.test.evil.test/", allowed_hosts=[".corp.test"])


def test_the_pinned_request_keeps_the_name_for_host_header_and_tls_sni():
    import httpx

    with httpx.Client() as client:
        request = fetching.build_pinned_request(
            client,
            httpx.URL("https://docs.example.com:8443/a?b=1"),
            "203.0.113.7",
            "UA",
            time.monotonic() + 5,
        )
    assert str(request.url) == "https://203.0.113.7:8443/a?b=1"
    assert request.headers["Host"] == "docs.example.com:8443"
    assert request.extensions["sni_hostname"] == "docs.example.com"


@pytest.fixture(scope="module")
def tls():
    """A private CA and a server certificate for 'intranet.test' (no IP in it)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(common):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(name("Test CA")).issuer_name(name("Test CA"))
        .public_key(ca_key.public_key()).serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder().subject_name(name("intranet.test")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(2)
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("intranet.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(*_write_chain(leaf.public_bytes(pem), key))
    server, port = serve(server_context)
    trust = ssl.create_default_context(cadata=ca.public_bytes(pem).decode())
    yield port, trust
    server.shutdown()
    server.server_close()


def _write_chain(cert_pem: bytes, key) -> tuple[str, str]:
    import tempfile

    from cryptography.hazmat.primitives import serialization

    folder = tempfile.mkdtemp(prefix="fetching-tls-")
    cert_path, key_path = f"{folder}/cert.pem", f"{folder}/key.pem"
    with open(cert_path, "wb") as handle:
        handle.write(cert_pem)
    with open(key_path, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


def test_https_is_pinned_to_the_checked_ip_yet_verified_against_the_name(tls, fake_dns):
    port, trust = tls
    table, _ = fake_dns
    table["intranet.test"] = ["127.0.0.1"]
    page = fetch_url(
        f"https://intranet.test:{port}/echo-host", allowed_hosts=["intranet.test"], verify=trust
    )
    assert page.data == f"intranet.test:{port}".encode()


def test_https_with_a_certificate_for_another_name_is_refused(tls, fake_dns):
    port, trust = tls
    table, _ = fake_dns
    table["other.test"] = ["127.0.0.1"]
    with pytest.raises(FetchError, match="certificate could not be verified") as caught:
        fetch_url(
            f"https://other.test:{port}/echo-host", allowed_hosts=["other.test"], verify=trust
        )
    assert not caught.value.transient


def test_a_redirect_from_https_down_to_http_is_refused(tls, fake_dns, server):
    port, trust = tls
    _, base = server
    table, _ = fake_dns
    table["intranet.test"] = ["127.0.0.1"]
    with pytest.raises(FetchError, match="insecure"):
        fetch_url(
            f"https://intranet.test:{port}/redirect?to={base}/page.html",
            allowed_hosts=["intranet.test", "127.0.0.1"],
            verify=trust,
        )


def test_ipaddress_agrees_that_cgnat_and_ula_are_not_global():
    # The policy leans on `is_global`; pin the stdlib behaviour it depends on.
    assert not ipaddress.ip_address("100.64.0.1").is_global
    assert not ipaddress.ip_address("fd00::1").is_global
    assert ipaddress.ip_address("93.184.216.34").is_global
