"""Adding a web page: an address the fetch would refuse is refused in the form, at once.

The form applies the fetch's own rules (``fetching.check_url_address``), so what it refuses and
what a fetch refuses cannot drift apart; nothing is stored for a refused address.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.contrib.auth.models import Group

from knowledge import fetching
from knowledge.models import Collection, Source

pytestmark = pytest.mark.django_db

HOSTILE_URLS = [
    "http://127.0.0.1",
    "http://127.0.0.1:5432/",
    "http://localhost",
    "http://localhost./admin",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://10.0.0.1",
    "http://192.168.1.1/router",
    "http://0.0.0.0/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "http://example.com@127.0.0.1/",
    "http://user:secret@intranet.example.com/",
]


@pytest.fixture
def wiki(make_user):
    """A collection managed by a group, with a (non-staff) manager and a staff member."""
    editors = Group.objects.create(name="Wiki editors")
    wiki = Collection.objects.create(name="Wiki", visibility=Collection.Visibility.EVERYONE)
    wiki.manage_groups.add(editors)
    manager = make_user(email="editor@example.com")
    manager.groups.add(editors)
    staff = make_user(email="staff@example.com", is_staff=True)
    return wiki, manager, staff


def add_page(client, collection, url, **extra):
    return client.post(f"/knowledge/collections/{collection.pk}/urls", {"url": url}, **extra)


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_a_hostile_address_is_refused_at_once_and_nothing_is_stored(client, wiki, url):
    collection, manager, _ = wiki
    client.force_login(manager)
    response = add_page(client, collection, url)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["ok"] is False and body["error"]
    assert not Source.objects.exists()


def test_a_name_resolving_to_loopback_is_refused_naming_the_address(client, wiki):
    collection, _, staff = wiki
    client.force_login(staff)  # which address a name resolves to is for staff only
    error = add_page(client, collection, "http://localhost:8000/wiki").json()["error"]
    assert "localhost points to 127.0.0.1" in error or "localhost points to ::1" in error
    assert not Source.objects.exists()


def test_a_manager_probing_internal_names_learns_no_internal_address(client, wiki):
    collection, manager, _ = wiki
    client.force_login(manager)
    error = add_page(client, collection, "http://localhost:8000/wiki").json()["error"]
    assert "localhost points to an internal address" in error
    assert "127.0.0.1" not in error and "::1" not in error
    assert not Source.objects.exists()


def test_a_manager_is_told_which_setting_allows_internal_hosts_and_to_ask(client, wiki):
    collection, manager, _ = wiki
    client.force_login(manager)
    error = add_page(client, collection, "http://10.0.0.1/wiki").json()["error"]
    assert "URL_FETCH_ALLOWED_HOSTS" in error
    assert "Ask an administrator to allow 10.0.0.1" in error
    assert "restart" not in error  # how to set it is for those who can


def test_staff_are_told_how_to_set_the_setting(client, wiki):
    collection, _, staff = wiki
    client.force_login(staff)
    error = add_page(client, collection, "http://10.0.0.1/wiki").json()["error"]
    assert "add 10.0.0.1 to URL_FETCH_ALLOWED_HOSTS" in error
    assert "environment of the web and worker processes, then restart them" in error


def test_the_metadata_address_names_no_setting_since_none_allows_it(client, wiki, settings):
    settings.URL_FETCH_ALLOWED_HOSTS = ["169.254.169.254"]
    collection, _, staff = wiki
    client.force_login(staff)
    error = add_page(client, collection, "http://169.254.169.254/").json()["error"]
    assert "never fetched" in error and "URL_FETCH_ALLOWED_HOSTS" not in error
    assert not Source.objects.exists()


def test_a_form_post_without_javascript_shows_the_refusal_on_the_page(client, wiki):
    collection, _, staff = wiki
    client.force_login(staff)
    response = add_page(client, collection, "http://127.0.0.1/", HTTP_ACCEPT="text/html")
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "URL_FETCH_ALLOWED_HOSTS" in page
    assert not Source.objects.exists()


def test_a_host_in_url_fetch_allowed_hosts_is_accepted(client, wiki, settings):
    settings.URL_FETCH_ALLOWED_HOSTS = ["localhost"]
    collection, manager, _ = wiki
    client.force_login(manager)
    response = add_page(client, collection, "http://localhost:8000/wiki")
    assert response.status_code == 200, response.content
    assert Source.objects.get().url == "http://localhost:8000/wiki"


def test_a_network_in_url_fetch_allowed_networks_is_accepted(client, wiki, settings):
    settings.URL_FETCH_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    collection, manager, _ = wiki
    client.force_login(manager)
    assert add_page(client, collection, "http://10.1.2.3/wiki").status_code == 200
    assert Source.objects.get().url == "http://10.1.2.3/wiki"


def test_a_name_that_does_not_resolve_is_left_to_the_fetch(client, wiki):
    # The worker may see DNS the web process does not; it resolves and checks again anyway.
    collection, manager, _ = wiki
    client.force_login(manager)
    response = add_page(client, collection, "https://no-such-host.invalid/page")
    assert response.status_code == 200, response.content
    assert Source.objects.get().url == "https://no-such-host.invalid/page"


def test_the_form_waits_for_dns_no_longer_than_its_timeout(monkeypatch):
    # A stand-in for a resolver that hangs (as the fetch tests' fake DNS stands in for one
    # that answers): getaddrinfo cannot be interrupted, so the check must stop waiting.
    release = threading.Event()

    def hanging_resolve(host, port):
        release.wait(30)
        return ["127.0.0.1"]

    monkeypatch.setattr(fetching, "_resolve", hanging_resolve)
    started = time.monotonic()
    try:
        fetching.check_url_address("http://slow.example.com/", timeout=0.3)
    finally:
        release.set()
    assert time.monotonic() - started < 2


def test_hung_lookups_leave_no_backlog_of_waiting_ones(monkeypatch):
    # Hung lookups fill the pool of four; checks made meanwhile time out. Their lookups must not
    # stay queued behind the hung ones (to run, uselessly, once those end): at most the four
    # that had started ever run.
    release = threading.Event()
    ran = []

    def hanging_resolve(host, port):
        ran.append(host)
        release.wait(30)
        return ["127.0.0.1"]

    monkeypatch.setattr(fetching, "_resolve", hanging_resolve)
    try:
        for n in range(10):
            fetching.check_url_address(f"http://slow{n}.example.com/", timeout=0.05)
    finally:
        release.set()
    fetching._RESOLVER.submit(lambda: None).result(timeout=10)  # the queue has drained
    assert len(ran) <= 4, ran
