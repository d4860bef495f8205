"""Fetching a web page for "add a web page", safely.

The server we are asked to fetch may be hostile, and so may the person asking: the URL could
point at the metadata service, at the database, or redirect there. So every hop of a fetch:

- accepts only http(s) URLs without credentials;
- resolves the host once, refuses loopback, private, link-local, multicast, reserved and
  unspecified addresses unless an operator allowed the host or network, and always refuses
  link-local (cloud metadata lives there) whatever the allow-lists say;
- connects to the very address it checked (the URL is rewritten to the IP, with the Host
  header and TLS SNI/certificate check kept on the name), so DNS cannot be rebound between
  the check and the connection;
- follows redirects itself, re-checking each one, and never downgrades https to http;
- streams the body, aborting past `max_bytes` (decoded size, compression included) or past
  the overall deadline, and accepts only the content types we can parse.

`check_url_address` applies the same rules before anything is stored (the "add a web page"
form), waiting at most its timeout for DNS; the fetch checks again, since DNS can change.

Limitations: `socket.getaddrinfo` cannot be interrupted, so a hanging DNS lookup is bounded
by the resolver's own timeout, not `timeout`. Environment proxies are ignored (trust_env is
off) because a proxy would make the address checks meaningless.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import time
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import unquote, urljoin

import httpx

DEFAULT_USER_AGENT = "CompanyAssistant/0.1 (knowledge fetcher)"
ALLOWED_CONTENT_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "text/plain",
        "text/markdown",
        "text/x-markdown",
        "application/pdf",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    }
)
ACCEPT = ", ".join(sorted(ALLOWED_CONTENT_TYPES)) + ";q=0.9"
# After IDNA encoding: DNS labels (underscores occur in the wild) or an IP literal.
HOST_SYNTAX = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?|[0-9A-Fa-f:.]+")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Never fetched, whatever the allow-lists say: link-local (169.254.169.254 and friends serve
# cloud credentials), the other clouds' metadata addresses, "this host", and multicast.
ALWAYS_BLOCKED = tuple(
    ipaddress.ip_network(network)
    for network in (
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::254/128",
        "100.100.100.200/32",
        "0.0.0.0/8",
        "::/128",
        "224.0.0.0/4",
        "ff00::/8",
    )
)
# IPv6 prefixes that tunnel or translate to IPv4 (NAT64, 6to4, Teredo): what they reach
# cannot be judged from the IPv6 address, so they count as non-public unless allowed.
TUNNEL_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32")
)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Form-time lookups run here so a hanging resolver costs the request `timeout`, not minutes
# (getaddrinfo cannot be interrupted; a stuck lookup keeps its thread until the resolver gives up).
_RESOLVER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="url-check-dns")


class FetchError(Exception):
    """The page could not be fetched. The message is shown to a person as is.

    `transient` is true for failures that may pass on a later attempt (timeouts, refused
    connections, 429 and 5xx answers), so a task can decide whether to back off and retry.
    """

    def __init__(self, message: str, *, transient: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status  # the HTTP status when the server answered with an error


class AddressRefused(FetchError):
    """The host resolves to an address the rules refuse. `always` is true for addresses no
    allow-list can open (link-local, metadata services), so a message need not suggest one."""

    def __init__(self, message: str, *, host: str, address: IPAddress, always: bool) -> None:
        super().__init__(message)
        self.host = host
        self.address = address
        self.always = always


@dataclass(frozen=True)
class FetchedPage:
    url: str  # the final URL, after redirects
    content_type: str  # the server's Content-Type header, parameters included
    data: bytes
    status: int
    # The validators a later conditional request sends back (If-None-Match, If-Modified-Since).
    etag: str = ""
    last_modified: str = ""

    @property
    def not_modified(self) -> bool:
        """304: the page is as it was when the validators sent with the request were taken."""
        return self.status == 304

    @property
    def filename(self) -> str:
        """The last path segment ("guide.pdf"), for `parse_document`'s extension check."""
        path = httpx.URL(self.url).path
        return unquote(path.rstrip("/").rsplit("/", 1)[-1]) if path.strip("/") else ""


@dataclass(frozen=True)
class _Policy:
    hosts: frozenset[str]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def build(cls, hosts: Sequence[str], networks: Sequence[str]) -> _Policy:
        """Operator settings: a malformed CIDR is a configuration bug, so it raises ValueError."""
        if isinstance(hosts, str) or isinstance(networks, str):
            raise TypeError("allowed_hosts and allowed_networks must be sequences of strings")
        return cls(
            hosts=frozenset(_normal_host(host) for host in hosts),
            networks=tuple(ipaddress.ip_network(network, strict=False) for network in networks),
        )

    def host_allowed(self, host: str) -> bool:
        host = _normal_host(host)
        return host in self.hosts or any(
            allowed.startswith(".") and host.endswith(allowed) for allowed in self.hosts
        )

    def check(self, host: str, address: IPAddress) -> None:
        if _in_any(address, ALWAYS_BLOCKED):
            raise AddressRefused(
                f"{host} points to {address}, a link-local or reserved address that is never fetched.",
                host=host,
                address=address,
                always=True,
            )
        if self.host_allowed(host) or _in_any(address, self.networks):
            return
        if not address.is_global or _in_any(address, TUNNEL_NETWORKS):
            raise AddressRefused(
                f"{host} points to {address}, a private or local address. Ask an administrator "
                "to allow it if this internal site should be fetched.",
                host=host,
                address=address,
                always=False,
            )


@dataclass(frozen=True)
class _Target:
    url: httpx.URL  # as the user (or a redirect) wrote it
    addresses: tuple[str, ...]  # checked addresses, in the resolver's order


def fetch_url(
    url: str,
    *,
    timeout: float = 10,
    max_bytes: int = 10 * 2**20,
    allowed_hosts: Sequence[str] = (),
    allowed_networks: Sequence[str] = (),
    max_redirects: int = 5,
    user_agent: str = DEFAULT_USER_AGENT,
    verify: ssl.SSLContext | bool = True,
    etag: str = "",
    last_modified: str = "",
    content_types: frozenset[str] = ALLOWED_CONTENT_TYPES,
) -> FetchedPage:
    """Fetch one document over http(s) with the checks described in the module docstring.

    `timeout` bounds the whole fetch (redirects and body included) as well as each network
    operation. `allowed_hosts` entries match exactly, or as a suffix when they start with a
    dot (".corp.example"); `allowed_networks` are CIDRs. `verify` is passed to httpx (an
    `ssl.SSLContext` for an internal CA). `etag` / `last_modified` make the request conditional
    (a 304 comes back as a page with `not_modified` and no data); `content_types` are the media
    types accepted (a sitemap's XML, say). Raises `FetchError` with a human-readable message.
    """
    conditional = {
        name: value
        for name, value in (("If-None-Match", etag), ("If-Modified-Since", last_modified))
        if value and _header_safe(value)
    }
    policy = _Policy.build(allowed_hosts, allowed_networks)
    deadline = time.monotonic() + timeout
    current = url
    with httpx.Client(follow_redirects=False, trust_env=False, verify=verify) as client:
        for _ in range(max_redirects + 1):
            target = _check_url(current, policy)
            result = _fetch_once(
                client, target, user_agent, max_bytes, deadline, conditional, content_types
            )
            if isinstance(result, FetchedPage):
                return result
            current = _next_url(target.url, result)
    raise FetchError(f"The page redirected more than {max_redirects} times.")


def validate_url_syntax(url: str) -> httpx.URL:
    """Check what can be checked without the network (for form validation); raise FetchError."""
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchError("This is not a valid web address.") from exc
    if parsed.scheme not in ("http", "https"):
        raise FetchError("Only http:// and https:// addresses can be fetched.")
    if not parsed.host:
        raise FetchError("This web address has no host name.")
    if not HOST_SYNTAX.fullmatch(parsed.raw_host.decode("ascii")):
        raise FetchError("This is not a valid web address.")
    if parsed.userinfo:
        raise FetchError("Web addresses containing a user name or password are not accepted.")
    return parsed


def check_url_address(
    url: str,
    *,
    allowed_hosts: Sequence[str] = (),
    allowed_networks: Sequence[str] = (),
    timeout: float = 3,
) -> None:
    """The fetch's own rules, applied before anything is stored (a form's check).

    Raises `FetchError` for a malformed URL and `AddressRefused` for a host that resolves to a
    refused address. A host that does not resolve within `timeout` (or at all) passes: the
    fetch resolves and checks again anyway, since DNS can change between now and then.
    """
    policy = _Policy.build(allowed_hosts, allowed_networks)
    parsed = validate_url_syntax(url)
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    lookup = _RESOLVER.submit(_resolve, host, port)
    try:
        addresses = lookup.result(timeout=timeout)
    except FetchError:
        return
    except FutureTimeout:
        # Still waiting for a thread behind hung lookups: drop it from the queue, so hung
        # lookups cannot pile up a backlog (one already running cannot be stopped).
        lookup.cancel()
        return
    _check_addresses(host, addresses, policy)


def _check_addresses(host: str, addresses: Sequence[str], policy: _Policy) -> None:
    for address in addresses:
        policy.check(host, _unmapped(ipaddress.ip_address(address)))


def _check_url(url: str, policy: _Policy) -> _Target:
    parsed = validate_url_syntax(url)
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = _resolve(host, port)
    _check_addresses(host, addresses, policy)
    # IPv4 first: hosts without IPv6 routes are common, the reverse is rare.
    ordered = sorted(addresses, key=lambda address: ":" in address)
    return _Target(url=parsed, addresses=tuple(ordered))


def _resolve(host: str, port: int) -> list[str]:
    """All addresses the host resolves to (numeric forms like 2130706433 included)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        temporary = getattr(exc, "errno", None) == socket.EAI_AGAIN
        raise FetchError(f"Could not find the server {host}.", transient=temporary) from exc
    addresses = list(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))
    if not addresses:
        raise FetchError(f"Could not find the server {host}.", transient=True)
    return addresses


def _unmapped(address: IPAddress) -> IPAddress:
    """::ffff:10.0.0.1 is 10.0.0.1 as far as routing goes; check it as such."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _fetch_once(
    client: httpx.Client,
    target: _Target,
    user_agent: str,
    max_bytes: int,
    deadline: float,
    conditional: dict[str, str] | None = None,
    content_types: frozenset[str] = ALLOWED_CONTENT_TYPES,
) -> FetchedPage | str:
    """Fetch from the first checked address that accepts a connection; a str is a redirect."""
    last_error: FetchError | None = None
    for address in target.addresses:
        request = build_pinned_request(
            client, target.url, address, user_agent, deadline, conditional
        )
        try:
            response = client.send(request, stream=True)
        except httpx.ConnectError as exc:
            if _is_certificate_error(exc):
                raise FetchError(
                    f"The secure connection to {target.url.host} failed: its certificate "
                    "could not be verified."
                ) from exc
            last_error = FetchError(f"Could not connect to {target.url.host}.", transient=True)
            last_error.__cause__ = exc
            continue
        except httpx.TimeoutException as exc:
            raise FetchError(f"{target.url.host} did not answer in time.", transient=True) from exc
        except httpx.HTTPError as exc:
            raise FetchError(f"Fetching {target.url.host} failed: {exc}", transient=True) from exc
        try:
            return _handle(response, target, max_bytes, deadline, content_types)
        finally:
            response.close()
    assert last_error is not None  # there is always at least one address
    raise last_error


def _is_certificate_error(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def build_pinned_request(
    client: httpx.Client,
    url: httpx.URL,
    address: str,
    user_agent: str,
    deadline: float,
    extra_headers: dict[str, str] | None = None,
) -> httpx.Request:
    """A GET that connects to `address` while speaking to `url`'s host (Host header, SNI)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchError("The page took too long to fetch.", transient=True)
    headers = {
        "Host": url.netloc.decode("ascii"),
        "User-Agent": user_agent,
        "Accept": ACCEPT,
        "Accept-Encoding": "gzip, deflate, identity",
        **(extra_headers or {}),
    }
    extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
    return client.build_request(
        "GET",
        url.copy_with(host=address),
        headers=headers,
        extensions=extensions,
        timeout=httpx.Timeout(remaining),
    )


def _handle(
    response: httpx.Response,
    target: _Target,
    max_bytes: int,
    deadline: float,
    content_types: frozenset[str] = ALLOWED_CONTENT_TYPES,
) -> FetchedPage | str:
    status = response.status_code
    validators = {
        "etag": _header_value(response, "etag"),
        "last_modified": _header_value(response, "last-modified"),
    }
    if status == 304:
        return FetchedPage(
            url=str(target.url), content_type="", data=b"", status=status, **validators
        )
    if status in REDIRECT_STATUSES:
        location = response.headers.get("location")
        if not location:
            raise FetchError("The page redirected without saying where to.")
        return location
    if not 200 <= status < 300:
        transient = status == 429 or status >= 500
        raise FetchError(
            f"The server answered {status} {response.reason_phrase}.",
            transient=transient,
            status=status,
        )
    content_type = response.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in content_types:
        wanted = (
            "only web pages, text, Markdown, PDF and Word documents can be added"
            if content_types == ALLOWED_CONTENT_TYPES
            else "expected " + " or ".join(sorted(content_types))
        )
        raise FetchError(f"The address returned {media or 'content of an unknown type'}; {wanted}.")
    data = _read_body(response, max_bytes, deadline)
    return FetchedPage(
        url=str(target.url), content_type=content_type, data=data, status=status, **validators
    )


def _header_value(response: httpx.Response, name: str) -> str:
    """A validator as stored and sent back later: printable and bounded, else nothing."""
    value = response.headers.get(name, "").strip()
    return value if len(value) <= 300 and _header_safe(value) else ""


def _header_safe(value: str) -> bool:
    # A hostile server must not smuggle a header line into our next request.
    return value.isascii() and value.isprintable() and "\r" not in value and "\n" not in value


def _next_url(current: httpx.URL, location: str) -> str:
    following = urljoin(str(current), location)
    if current.scheme == "https" and following.lower().startswith("http:"):
        raise FetchError("The page redirected from a secure (https) to an insecure address.")
    return following


def _read_body(response: httpx.Response, max_bytes: int, deadline: float) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(_too_big(max_bytes))
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    body = bytearray()
    try:
        for chunk in _decoded(response.iter_raw(), encoding, max_bytes):
            body += chunk
            if len(body) > max_bytes:
                raise FetchError(_too_big(max_bytes))
            if time.monotonic() > deadline:
                raise FetchError("The page took too long to download.", transient=True)
    except httpx.TimeoutException as exc:
        raise FetchError("The server stopped sending the page.", transient=True) from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"Downloading the page failed: {exc}", transient=True) from exc
    return bytes(body)


def _decoded(chunks: Iterator[bytes], encoding: str, max_bytes: int) -> Iterator[bytes]:
    """Undo gzip/deflate ourselves, never inflating more than `max_bytes` + 1 at a time."""
    if encoding in ("", "identity"):
        yield from chunks
        return
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise FetchError(f"The server used a compression ({encoding}) that is not supported.")
    # wbits 47 = 32 + 15: accept either a gzip or a zlib header, as HTTP's two codings use.
    inflater = zlib.decompressobj(47)
    try:
        for chunk in chunks:
            data = inflater.decompress(chunk, max_bytes + 1)
            if inflater.unconsumed_tail:
                raise FetchError(_too_big(max_bytes))
            yield data
        yield inflater.flush()
    except zlib.error as exc:
        raise FetchError("The server sent a damaged compressed page.") from exc


def _too_big(max_bytes: int) -> str:
    return f"The page is larger than the {max_bytes / 2**20:g} MB limit."


def _in_any(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in networks if network.version == address.version)


def _normal_host(host: str) -> str:
    return host.strip().lower().rstrip(".").strip("[]")
