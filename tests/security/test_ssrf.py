"""Server-side request forgery through the knowledge door: a manager adds a "web page" that is
really an internal address, hoping the worker fetches it and indexes what it returns.

Only loopback servers are used as targets (this machine's own); the fetcher's unit tests in
tests/knowledge/test_fetching.py cover private, reserved and metadata addresses without
connecting to them.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from knowledge import services
from knowledge.models import Chunk, Source
from tests.support.knowledge import make_collection

INTERNAL_SECRET = b"<h1>Internal admin</h1><p>root password: hunter2</p>"


class _Internal(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.server.seen.append(self.path)
        if self.path.startswith("/hop"):
            target = self.path.split("to=", 1)[1]
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(INTERNAL_SECRET)))
        self.end_headers()
        self.wfile.write(INTERNAL_SECRET)


@pytest.fixture
def internal():
    """An 'internal' web server on this machine that must never be fetched."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Internal)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def manager(make_user):
    editors = Group.objects.create(name="editors")
    user = make_user(email="editor@example.com")
    user.groups.add(editors)
    collection = make_collection("Wiki", everyone=True, managers=[editors])
    client = Client()
    client.force_login(user)
    return client, collection


def _add_and_index(client, collection, url: str):
    """Adds the URL through the knowledge page, then indexes it as a worker would."""
    response = client.post(f"/knowledge/collections/{collection.pk}/urls", {"url": url})
    source = Source.objects.filter(collection=collection, url=url).first()
    if source is not None:
        services.source_index(source_id=source.pk)
        source.refresh_from_db()
    return response, source


@pytest.mark.django_db
@pytest.mark.parametrize(
    "template",
    [
        "http://127.0.0.1:{port}/",
        "http://localhost:{port}/",
        "http://127.1.2.3:{port}/",
        "http://2130706433:{port}/",  # 127.0.0.1 as one number
        "http://0x7f.0.0.1:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
    ],
)
def test_a_web_page_source_at_an_internal_address_is_never_fetched(manager, internal, template):
    client, collection = manager
    url = template.format(port=internal.server_address[1])

    response, source = _add_and_index(client, collection, url)

    assert internal.seen == []
    assert response.status_code in (200, 302, 400)
    assert source is None or source.status == Source.Status.FAILED
    assert not Chunk.objects.filter(text__contains="hunter2").exists()


@pytest.mark.django_db
def test_a_redirect_from_an_allowed_host_to_an_internal_one_is_refused_at_the_hop(
    manager, internal, settings
):
    """The operator allows one intranet host by name; a page there must not bounce the
    fetcher on to another internal address."""
    settings.URL_FETCH_ALLOWED_HOSTS = ["127.0.0.1"]
    client, collection = manager
    port = internal.server_address[1]
    url = f"http://127.0.0.1:{port}/hop?to=http://localhost:{port}/secret"

    _, source = _add_and_index(client, collection, url)

    assert internal.seen == [f"/hop?to=http://localhost:{port}/secret"]  # the hop, not the target
    assert source.status == Source.Status.FAILED
    assert not Chunk.objects.filter(text__contains="hunter2").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://127.0.0.1/", "javascript:alert(1)"],
)
def test_a_web_page_source_with_a_non_web_scheme_is_refused_at_once(manager, url):
    client, collection = manager

    response = client.post(f"/knowledge/collections/{collection.pk}/urls", {"url": url})

    assert response.status_code == 400
    assert not Source.objects.filter(collection=collection).exists()
