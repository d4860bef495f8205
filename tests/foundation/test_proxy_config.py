"""The nginx configuration in front of several Daphnes (assistant/devstack/proxy.py), checked
without starting the stack: what `run --web N` writes and what `proxy-config` prints for
production are the same site, it passes WebSocket upgrades, balances, streams, caps bodies,
and no value can add directives of its own. Starting it for real is tests/e2e/test_launcher.py.
"""

import re
import shutil
import subprocess
import sys

import pytest

from assistant.devstack import proxy
from tests.support.processes import BASE_DIR

SITE = proxy.Site(listen="127.0.0.1:8000", upstreams=("127.0.0.1:8001", "127.0.0.1:8002"))


def _directives(text: str) -> list[str]:
    """The configuration's directives, one per line, comments dropped."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def test_the_site_balances_across_every_web_process_and_passes_websocket_upgrades():
    lines = _directives(proxy.site_config(SITE))

    upstream = lines[lines.index("upstream assistant_web {") :]
    assert upstream[1:4] == ["least_conn;", "server 127.0.0.1:8001;", "server 127.0.0.1:8002;"]
    assert "map $http_upgrade $connection_upgrade {" in lines
    for directive in (
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header Host $http_host;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_buffering off;",
        "listen 127.0.0.1:8000;",
    ):
        assert directive in lines, directive
    assert lines.count("proxy_pass http://assistant_web;") == 4


def test_a_quiet_chat_socket_is_kept_open_far_longer_than_a_plain_request():
    text = proxy.site_config(SITE)
    socket_block = text[text.index("location /ws/") : text.index("location / {")]

    assert "proxy_read_timeout 1d;" in socket_block
    assert "proxy_read_timeout 120s;" in text[: text.index("location /ws/")]


def test_bodies_are_capped_at_the_apps_upload_limit_plus_its_margin():
    site = proxy.Site(listen="80", upstreams=("web:8000",), max_upload_mb=7)

    assert "client_max_body_size 8m;" in _directives(proxy.site_config(site))


def test_the_upstream_header_is_only_in_the_development_config():
    dev = proxy.Site(listen="8000", upstreams=SITE.upstreams, show_upstream=True)

    assert "add_header X-Upstream $upstream_addr always;" in _directives(proxy.site_config(dev))
    assert "X-Upstream" not in proxy.site_config(SITE)


def test_tls_is_terminated_here_only_with_a_certificate_and_its_key():
    site = proxy.Site(
        listen="443",
        upstreams=SITE.upstreams,
        tls_certificate="/etc/ssl/assistant.pem",
        tls_key="/etc/ssl/private/assistant.key",
    )
    lines = _directives(proxy.site_config(site))

    assert "listen 443 ssl;" in lines
    assert "ssl_certificate /etc/ssl/assistant.pem;" in lines
    with pytest.raises(proxy.ProxyConfigError, match="both a certificate and its key"):
        proxy.Site(listen="443", upstreams=SITE.upstreams, tls_certificate="/etc/ssl/a.pem")


def test_the_development_config_keeps_every_file_nginx_writes_under_var_dir(tmp_path):
    text = proxy.dev_config(SITE, var_dir=tmp_path, as_root=False)
    lines = _directives(text)

    assert lines[:2] == ["daemon off;", "master_process on;"]
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        assert f"{kind}_temp_path {tmp_path / 'tmp' / kind};" in lines
    assert f"pid {tmp_path / 'nginx.pid'};" in lines
    assert f"error_log {tmp_path / 'error.log'} warn;" in lines
    assert f"access_log {tmp_path / 'access.log'} upstream;" in lines
    paths = re.findall(r"\s(/\S+?);", text)
    assert paths and all(path.startswith(str(tmp_path)) for path in paths), paths
    # The production site, word for word, inside the development config.
    site = _directives(proxy.site_config(SITE))
    start = lines.index(site[0])
    assert lines[start : start + len(site)] == site


def test_as_root_the_workers_run_as_root_so_they_can_write_var_dir(tmp_path):
    assert "user root root;" in _directives(proxy.dev_config(SITE, var_dir=tmp_path, as_root=True))
    assert "user " not in proxy.dev_config(SITE, var_dir=tmp_path, as_root=False)


@pytest.mark.parametrize(
    "upstream",
    [
        "127.0.0.1:8001; include /etc/passwd",
        "127.0.0.1:8001}\nserver { listen 9999",
        "127.0.0.1",  # no port
        "127.0.0.1:0",
        "127.0.0.1:70000",
        "web 8001",
        "",
    ],
)
def test_an_upstream_that_would_inject_directives_is_refused(upstream):
    with pytest.raises(proxy.ProxyConfigError, match="not a HOST:PORT of a web process"):
        proxy.Site(listen="80", upstreams=(upstream,))


@pytest.mark.parametrize("listen", ["80; user nobody", "80\n", "port", "99999", "a b:80"])
def test_a_listen_address_that_would_inject_directives_is_refused(listen):
    with pytest.raises(proxy.ProxyConfigError, match="not a port or HOST:PORT"):
        proxy.Site(listen=listen, upstreams=("127.0.0.1:8001",))


def test_a_server_name_or_tls_path_that_would_inject_directives_is_refused():
    with pytest.raises(proxy.ProxyConfigError, match="not a server name"):
        proxy.Site(listen="80", upstreams=("w:1",), server_name="x; include /etc/shadow")
    with pytest.raises(proxy.ProxyConfigError, match="not an absolute file path"):
        proxy.Site(listen="80", upstreams=("w:1",), tls_certificate="a;b", tls_key="/k")


def test_behind_a_load_balancer_the_clients_address_comes_from_its_forwarded_for():
    site = proxy.Site(
        listen="80", upstreams=("10.0.0.5:8000",), trusted_proxies=("10.1.0.0/16", "10.2.0.7")
    )
    lines = _directives(proxy.site_config(site))

    assert lines[lines.index("set_real_ip_from 10.1.0.0/16;") :][:4] == [
        "set_real_ip_from 10.1.0.0/16;",
        "set_real_ip_from 10.2.0.7;",
        "real_ip_header X-Forwarded-For;",
        "real_ip_recursive on;",
    ]
    # What Daphne then receives is that address alone, never a list the client began.
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in lines
    assert not any(
        line.startswith("set_real_ip_from") for line in _directives(proxy.site_config(SITE))
    )


@pytest.mark.parametrize("network", ["10.0.0.0/8;\ninclude /etc/shadow", "all", "10.0.0.0/33", ""])
def test_a_trusted_proxy_that_is_not_an_address_is_refused(network):
    with pytest.raises(proxy.ProxyConfigError, match="not an address or network"):
        proxy.Site(listen="80", upstreams=("10.0.0.5:8000",), trusted_proxies=(network,))


def test_nginx_accepts_a_site_behind_a_load_balancer(tmp_path):
    nginx = proxy.find_nginx({"PATH": "/usr/bin:/bin"})
    if nginx is None:
        pytest.skip("needs Debian's nginx (make system-deps installs it)")
    proxy.prepare(tmp_path)
    conf = tmp_path / "nginx.conf"
    behind = proxy.Site(
        listen="127.0.0.1:8000", upstreams=("127.0.0.1:8001",), trusted_proxies=("10.1.0.0/16",)
    )
    conf.write_text(proxy.dev_config(behind, var_dir=tmp_path))

    done = subprocess.run(
        [*proxy.nginx_argv(nginx, conf=conf, var_dir=tmp_path), "-t"],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert done.returncode == 0, done.stderr


def test_without_an_upstream_there_is_nothing_to_proxy():
    with pytest.raises(proxy.ProxyConfigError, match="at least one upstream"):
        proxy.Site(listen="80", upstreams=())


def test_nginx_accepts_the_development_config(tmp_path):
    """Debian's nginx parses what the launcher writes (`nginx -t`: nothing is started)."""
    nginx = proxy.find_nginx({"PATH": "/usr/bin:/bin"})
    if nginx is None:
        pytest.skip("needs Debian's nginx (make system-deps installs it)")
    proxy.prepare(tmp_path)
    conf = tmp_path / "nginx.conf"
    conf.write_text(proxy.dev_config(SITE, var_dir=tmp_path))

    done = subprocess.run(
        [*proxy.nginx_argv(nginx, conf=conf, var_dir=tmp_path), "-t"],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_nginx_is_found_off_path_where_debian_puts_it_and_an_explicit_one_must_run(tmp_path):
    if not shutil.which("nginx", path="/usr/sbin"):
        pytest.skip("needs Debian's nginx (make system-deps installs it)")
    assert proxy.find_nginx({"PATH": str(tmp_path)}) == "/usr/sbin/nginx"
    assert proxy.find_nginx({"EMBEDDED_NGINX": str(tmp_path / "nginx")}) is None


def _embedded(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "assistant.embedded", *args],
        cwd=BASE_DIR,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_proxy_config_prints_the_production_site():
    done = _embedded(
        "proxy-config",
        "--upstream",
        "10.0.0.5:8000",
        "--upstream",
        "10.0.0.6:8000",
        "--listen",
        "80",
        "--server-name",
        "assistant.example.com",
    )

    assert done.returncode == 0, done.stderr
    site = proxy.Site(
        listen="80",
        upstreams=("10.0.0.5:8000", "10.0.0.6:8000"),
        server_name="assistant.example.com",
    )
    assert done.stdout == proxy.site_config(site)


def test_proxy_config_takes_the_load_balancers_to_trust_and_refuses_a_hostile_one():
    done = _embedded(
        "proxy-config", "--upstream", "10.0.0.5:8000", "--trusted-proxy", "10.1.0.0/16"
    )
    assert done.returncode == 0, done.stderr
    assert "set_real_ip_from 10.1.0.0/16;" in done.stdout

    hostile = _embedded(
        "proxy-config", "--upstream", "10.0.0.5:8000", "--trusted-proxy", "0/0;\nallow all"
    )
    assert hostile.returncode == 2 and "not an address or network" in hostile.stderr
    assert hostile.stdout == ""


def test_proxy_config_refuses_a_hostile_upstream_with_a_clear_error():
    done = _embedded("proxy-config", "--upstream", "10.0.0.5:8000;\ninclude /etc/shadow")

    assert done.returncode == 2
    assert "not a HOST:PORT of a web process" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_the_readme_shows_the_production_site_exactly_as_the_command_prints_it():
    printed = subprocess.run(
        [sys.executable, "-m", "assistant.embedded", "proxy-config"]
        + ["--upstream", "127.0.0.1:8001", "--upstream", "127.0.0.1:8002"]
        + ["--listen", "80", "--server-name", "assistant.example.com"],
        capture_output=True,
        text=True,
        check=True,
        cwd=BASE_DIR,
    ).stdout
    readme = (BASE_DIR / "README.md").read_text()
    assert f"```nginx\n{printed}```" in readme


def test_the_api_and_mcp_may_wait_out_the_models_retries_before_a_first_word():
    """A whole answer over HTTP waits on the model's retries and its fallback (minutes): the
    proxy's plain 120 s would cut it with a 504 and store the answer as stopped."""
    config = proxy.site_config(proxy.Site(listen="80", upstreams=("127.0.0.1:8001",)))
    for location in ("location /v1/ {", "location /mcp {"):
        block = config.split(location, 1)[1].split("}", 1)[0]
        assert f"proxy_read_timeout {proxy.ANSWER_TIMEOUT};" in block
