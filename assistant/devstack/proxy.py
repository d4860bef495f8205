"""nginx in front of several Daphne processes: the one place its configuration is written.

``python -m assistant.embedded run --web N`` (N > 1) starts nginx as a child with
:func:`dev_config`; ``python -m assistant.embedded proxy-config --upstream HOST:PORT ...``
prints :func:`site_config`, the production example the README shows. Both come from the same
code, so the documented layout is the tested one.

Plain Python, no Django: the launcher uses it before any app runs.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

# Uploads are refused by the app above KNOWLEDGE_MAX_UPLOAD_MB plus this margin for the multipart
# envelope (assistant/project/bodylimit.py): the proxy caps bodies at the same size, so a huge
# body is refused before Daphne buffers it whole.
BODY_MARGIN_MB = 1
DEFAULT_UPLOAD_MB = 50

# A chat socket is quiet between questions (the page sends no heartbeat); Daphne closes sockets
# after a day (its --websocket_timeout), and the page reconnects by itself after that.
SOCKET_TIMEOUT = "1d"
# Plain requests are short; an upload is stored and queued, never processed while it waits.
HTTP_TIMEOUT = "120s"
# A whole answer over HTTP (the API, MCP) may wait on a model that is retried, then its
# fallback, before its first word: longer than any page.
ANSWER_TIMEOUT = "600s"


# What may appear where the configuration takes an address: anything else (a `;`, a brace, a
# space, a newline) would let a value add directives of its own.
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
_ADDRESS = re.compile(rf"(?:{_HOST}:)?(?P<port>[0-9]{{1,5}})")
_UPSTREAM = re.compile(rf"{_HOST}:(?P<port>[0-9]{{1,5}})")
_SERVER_NAME = re.compile(r"[A-Za-z0-9_*.-]+")
_PATH = re.compile(r"/[A-Za-z0-9_./-]+")


class ProxyConfigError(ValueError):
    """A value that cannot go into the configuration; the message says which and why."""


@dataclass(frozen=True)
class Site:
    """The proxied site: where nginx listens and the Daphne processes behind it.

    ``show_upstream`` adds an ``X-Upstream`` response header naming the Daphne that answered
    (development only: it shows which process served a request, and nothing about users).
    """

    listen: str
    upstreams: tuple[str, ...]
    max_upload_mb: int = DEFAULT_UPLOAD_MB
    server_name: str = "_"
    tls_certificate: str | None = None
    tls_key: str | None = None
    show_upstream: bool = False
    # Addresses (CIDR) of load balancers in front of nginx whose X-Forwarded-For is believed.
    trusted_proxies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_listen(self.listen)
        if not self.upstreams:
            raise ProxyConfigError("give at least one upstream (HOST:PORT of a Daphne process)")
        for upstream in self.upstreams:
            check_upstream(upstream)
        if not 1 <= self.max_upload_mb <= 100_000:
            raise ProxyConfigError(
                f"the upload limit must be 1-100000 MB, not {self.max_upload_mb}"
            )
        if not _SERVER_NAME.fullmatch(self.server_name):
            raise ProxyConfigError(f"not a server name: {self.server_name!r}")
        if (self.tls_certificate is None) != (self.tls_key is None):
            raise ProxyConfigError("TLS needs both a certificate and its key")
        for path in (self.tls_certificate, self.tls_key):
            if path is not None and not _PATH.fullmatch(path):
                raise ProxyConfigError(f"not an absolute file path nginx can read: {path!r}")
        for network in self.trusted_proxies:
            check_network(network)


def check_listen(value: str) -> str:
    match = _ADDRESS.fullmatch(value)
    if not match or not 1 <= int(match["port"]) <= 65535:
        raise ProxyConfigError(f"not a port or HOST:PORT to listen on: {value!r}")
    return value


def check_network(value: str) -> str:
    """An address or CIDR network, written back exactly as given (only a parsed one passes)."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ProxyConfigError(f"not an address or network (CIDR) of a proxy: {value!r}") from None
    if not re.fullmatch(r"[0-9A-Fa-f:./]+", value):
        raise ProxyConfigError(f"not an address or network (CIDR) of a proxy: {value!r}")
    return value


def check_upstream(value: str) -> str:
    match = _UPSTREAM.fullmatch(value)
    if not match or not 1 <= int(match["port"]) <= 65535:
        raise ProxyConfigError(f"not a HOST:PORT of a web process: {value!r}")
    return value


def site_config(site: Site) -> str:
    """The ``http``-context part: what production puts in /etc/nginx/conf.d/assistant.conf."""
    servers = "\n".join(f"    server {upstream};" for upstream in site.upstreams)
    listen = f"{site.listen} ssl" if site.tls_certificate else site.listen
    tls = (
        f"    ssl_certificate {site.tls_certificate};\n    ssl_certificate_key {site.tls_key};\n"
        if site.tls_certificate
        else ""
    )
    real_ip = (
        "    # Behind the load balancers below: the client is the address they put last in\n"
        "    # X-Forwarded-For (nginx skips their own), never one a client wrote there itself.\n"
        + "".join(f"    set_real_ip_from {network};\n" for network in site.trusted_proxies)
        + "    real_ip_header X-Forwarded-For;\n    real_ip_recursive on;\n"
        if site.trusted_proxies
        else ""
    )
    upstream_header = (
        "    # Development only: which Daphne answered (tests check both are used).\n"
        "    add_header X-Upstream $upstream_addr always;\n"
        if site.show_upstream
        else ""
    )
    return f"""\
# A WebSocket upgrade is passed on as one; any other request closes its upstream connection.
map $http_upgrade $connection_upgrade {{
    default upgrade;
    ''      close;
}}

# Chat sockets live for minutes to hours: least_conn spreads the open ones evenly, where round
# robin would count a socket opened an hour ago the same as nothing. No sticky sessions are
# needed: events travel through Redis and answers are saved by the process that wrote them.
upstream assistant_web {{
    least_conn;
{servers}
}}

server {{
    listen {listen};
    server_name {site.server_name};
{tls}
    # The app refuses uploads above KNOWLEDGE_MAX_UPLOAD_MB ({site.max_upload_mb} MB); the
    # proxy refuses them first, before Daphne buffers the whole body.
    client_max_body_size {site.max_upload_mb + BODY_MARGIN_MB}m;
{upstream_header}{real_ip}
    proxy_http_version 1.1;
    proxy_set_header Host $http_host;
    # The client's own address, not a list it could start with one of its choosing: Daphne
    # (--proxy-headers) takes the first address of X-Forwarded-For.
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
    # Answers stream over the socket: pass every frame on at once.
    proxy_buffering off;
    proxy_read_timeout {HTTP_TIMEOUT};
    proxy_send_timeout {HTTP_TIMEOUT};

    location /ws/ {{
        proxy_pass http://assistant_web;
        # A quiet chat tab must not be cut off between questions.
        proxy_read_timeout {SOCKET_TIMEOUT};
        proxy_send_timeout {SOCKET_TIMEOUT};
    }}

    location /v1/ {{
        proxy_pass http://assistant_web;
        proxy_read_timeout {ANSWER_TIMEOUT};
        proxy_send_timeout {ANSWER_TIMEOUT};
    }}

    location /mcp {{
        proxy_pass http://assistant_web;
        proxy_read_timeout {ANSWER_TIMEOUT};
        proxy_send_timeout {ANSWER_TIMEOUT};
    }}

    location / {{
        proxy_pass http://assistant_web;
    }}
}}
"""


def dev_config(site: Site, *, var_dir: Path, as_root: bool | None = None) -> str:
    """A whole nginx.conf for a child of the launcher: in the foreground, every file it writes
    (pid, logs, request bodies and other temporary files) under ``var_dir``."""
    var_dir = Path(var_dir)
    if as_root is None:
        as_root = os.geteuid() == 0
    # As root, nginx would run its workers as `nobody`/`www-data`, which cannot write var_dir.
    user = "user root root;\n" if as_root else ""
    temp = "\n".join(
        f"    {kind}_temp_path {var_dir / 'tmp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    site_text = "\n".join(f"    {line}" if line else "" for line in site_config(site).splitlines())
    return f"""\
# Written by assistant/devstack/proxy.py for `python -m assistant.embedded run --web N`.
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 16384;
{user}pid {var_dir / "nginx.pid"};
error_log {var_dir / "error.log"} warn;

events {{
    worker_connections 8192;
}}

http {{
    log_format upstream '$remote_addr [$time_local] "$request" $status '
                        'upstream=$upstream_addr rt=$request_time';
    access_log {var_dir / "access.log"} upstream;
{temp}

{site_text}
}}
"""


def prepare(var_dir: Path) -> None:
    """The folders a :func:`dev_config` names (nginx creates only the last level itself)."""
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (Path(var_dir) / "tmp" / kind).mkdir(parents=True, exist_ok=True)


def nginx_argv(nginx: str, *, conf: Path, var_dir: Path) -> list[str]:
    """``-e stderr``: errors before the configuration is read go to the terminal, not to
    /var/log/nginx (which needs root)."""
    return [nginx, "-p", str(var_dir), "-c", str(conf), "-e", "stderr"]


def find_nginx(env: dict[str, str]) -> str | None:
    """``EMBEDDED_NGINX`` (a path) if set; else nginx on PATH, or Debian's /usr/sbin/nginx
    (not on a normal user's PATH). None when there is none to run."""
    chosen = env.get("EMBEDDED_NGINX")
    if chosen:
        return chosen if os.path.isfile(chosen) and os.access(chosen, os.X_OK) else None
    search = os.pathsep.join([env.get("PATH", os.defpath), "/usr/sbin", "/usr/local/sbin"])
    return shutil.which("nginx", path=search)


def missing_nginx_message(web: int, env: dict[str, str]) -> str:
    chosen = env.get("EMBEDDED_NGINX")
    if chosen:
        return (
            f"--web {web} puts nginx in front of the web processes, but EMBEDDED_NGINX="
            f"{chosen} is not a program that can run. Point it at nginx, or unset it to use "
            "the one installed (`make system-deps`)."
        )
    return (
        f"--web {web} puts nginx in front of the web processes, but nginx is not installed. "
        "Install it with `make system-deps` (as root) or `sudo apt-get install -y nginx`, "
        "or run a single web process (--web 1)."
    )
