"""Sitemaps (knowledge.syncing): a site's sitemap.xml, or its root, adds its pages to a
collection within a count and a depth, refuses entries the rules refuse (another host, a
private address) and reports them; a later reading adds new pages and marks removed ones.
Against a real site on 127.0.0.1, allowed by host name ("localhost")."""

import signal
from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.contrib.auth.models import Group
from django.utils import timezone

from knowledge import services, syncing, tasks
from knowledge.models import Sitemap, Source
from tests.support.knowledge import make_collection
from tests.support.local_site import serve_site

XML = "application/xml"


def urlset(*locations: str) -> str:
    entries = "".join(f"<url><loc>{loc}</loc></url>" for loc in locations)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>'
    )


def index(*locations: str) -> str:
    entries = "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locations)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</sitemapindex>'
    )


@pytest.fixture
def site(settings):
    settings.URL_FETCH_ALLOWED_HOSTS = ["localhost"]
    settings.URL_FETCH_ALLOWED_NETWORKS = []
    with serve_site() as site:
        yield site


@pytest.fixture
def manager(make_user):
    editors = Group.objects.create(name="editors")
    user = make_user(email="editor@example.com")
    user.groups.add(editors)
    user.wiki = make_collection("Wiki", everyone=True, managers=[editors])
    return user


def read(sitemap: Sitemap) -> Sitemap:
    syncing.sitemap_refresh(sitemap_id=sitemap.pk)
    sitemap.refresh_from_db()
    return sitemap


def page_urls(collection) -> set[str]:
    return set(Source.objects.filter(collection=collection).values_list("url", flat=True))


@pytest.mark.django_db
def test_a_sites_root_adds_the_pages_its_sitemap_lists_and_refuses_other_hosts(site, manager):
    site.put(
        "/sitemap.xml",
        urlset(
            site.url("/a.html"),
            site.url("/b.html"),
            f"http://127.0.0.1:{site.port}/admin",  # this machine by address: private
            "http://10.0.0.7/secret",  # a private address on another host
            "https://elsewhere.example/page",
        ),
        content_type=XML,
    )

    sitemap = read(syncing.sitemap_add(user=manager, collection=manager.wiki, url=site.url("/")))

    assert sitemap.url == site.url("/sitemap.xml")
    assert page_urls(manager.wiki) == {site.url("/a.html"), site.url("/b.html")}
    assert set(Source.objects.values_list("sitemap", flat=True)) == {sitemap.pk}
    assert sitemap.report["added"] == 2 and sitemap.report["refused_count"] == 3
    refused = {entry["url"]: entry["reason"] for entry in sitemap.report["refused"]}
    assert "another site" in refused["http://10.0.0.7/secret"]
    assert "another site" in refused[f"http://127.0.0.1:{site.port}/admin"]
    assert sitemap.error == "" and sitemap.last_checked_at is not None


@pytest.mark.django_db
def test_a_sitemap_on_a_private_address_is_refused_like_any_page(site, manager, settings):
    settings.URL_FETCH_ALLOWED_HOSTS = []  # the site is 127.0.0.1: private, not allowed
    site.put("/sitemap.xml", urlset(site.url("/a.html")), content_type=XML)

    sitemap = read(
        syncing.sitemap_add(user=manager, collection=manager.wiki, url=site.url("/sitemap.xml"))
    )

    assert "private or local address" in sitemap.error
    assert site.requests_for("/sitemap.xml") == []
    assert page_urls(manager.wiki) == set()


@pytest.mark.django_db
def test_a_later_reading_adds_new_pages_and_marks_the_ones_no_longer_listed(site, manager):
    site.put("/sitemap.xml", urlset(site.url("/a.html"), site.url("/b.html")), content_type=XML)
    sitemap = read(
        syncing.sitemap_add(user=manager, collection=manager.wiki, url=site.url("/sitemap.xml"))
    )
    site.put("/sitemap.xml", urlset(site.url("/b.html"), site.url("/c.html")), content_type=XML)

    sitemap = read(sitemap)

    assert page_urls(manager.wiki) == {site.url(p) for p in ("/a.html", "/b.html", "/c.html")}
    assert sitemap.report["added"] == 1 and sitemap.report["no_longer_listed"] == 1
    removed = Source.objects.get(url=site.url("/a.html"))
    assert removed.gone_at is not None and removed.status == Source.Status.FAILED
    assert "no longer listed in the sitemap" in removed.error
    # An unlisted page is not checked on the schedule any more ...
    assert syncing.source_refresh(source_id=removed.pk) == syncing.Outcome.SKIPPED
    # ... until the sitemap lists it again.
    site.put("/sitemap.xml", urlset(site.url("/a.html")), content_type=XML)
    read(sitemap)
    removed.refresh_from_db()
    assert removed.gone_at is None and removed.status == Source.Status.QUEUED


@pytest.mark.django_db
def test_a_sitemap_index_is_followed_to_its_depth_and_the_pages_to_their_count(
    site, manager, settings
):
    settings.SITEMAP_MAX_PAGES = 3
    settings.SITEMAP_MAX_DEPTH = 2
    site.put(
        "/sitemap.xml",
        index(site.url("/pages.xml"), site.url("/deeper.xml")),
        content_type=XML,
    )
    site.put("/pages.xml", urlset(*(site.url(f"/p{i}.html") for i in range(5))), content_type=XML)
    site.put("/deeper.xml", index(site.url("/deepest.xml")), content_type=XML)
    site.put("/deepest.xml", urlset(site.url("/deep.html")), content_type=XML)

    sitemap = read(
        syncing.sitemap_add(user=manager, collection=manager.wiki, url=site.url("/sitemap.xml"))
    )

    assert page_urls(manager.wiki) == {site.url(f"/p{i}.html") for i in range(3)}
    assert sitemap.report["left_out"] == 2
    refused = {entry["url"]: entry["reason"] for entry in sitemap.report["refused"]}
    assert "deeper than 2 levels" in refused[site.url("/deepest.xml")]
    assert site.requests_for("/deepest.xml") == []
    assert sitemap.report["complete"] is False  # a listed sitemap was not read
    # Pages past the limit were listed: not "no longer listed" on the next, complete reading.
    site.put("/sitemap.xml", index(site.url("/pages.xml")), content_type=XML)
    sitemap = read(sitemap)
    assert sitemap.report["complete"] is True and sitemap.report["left_out"] == 2
    assert not Source.objects.filter(gone_at__isnull=False).exists()


def gone_urls(collection) -> set[str]:
    gone = Source.objects.filter(collection=collection, gone_reason=syncing.UNLISTED)
    return set(gone.values_list("url", flat=True))


@pytest.mark.django_db
def test_a_child_sitemap_that_fails_to_load_marks_none_of_its_pages_gone(site, manager):
    site.put("/sitemap.xml", index(site.url("/one.xml"), site.url("/two.xml")), content_type=XML)
    site.put("/one.xml", urlset(site.url("/a.html"), site.url("/b.html")), content_type=XML)
    site.put("/two.xml", urlset(site.url("/c.html"), site.url("/d.html")), content_type=XML)
    sitemap = read(
        syncing.sitemap_add(user=manager, collection=manager.wiki, url=site.url("/sitemap.xml"))
    )
    assert len(page_urls(manager.wiki)) == 4

    site.put("/two.xml", "busy", status=503, content_type="text/plain")
    sitemap = read(sitemap)

    assert gone_urls(manager.wiki) == set()
    assert sitemap.report["complete"] is False and sitemap.report["no_longer_listed"] == 0
    refused = {entry["url"]: entry["reason"] for entry in sitemap.report["refused"]}
    assert "could not be read" in refused[site.url("/two.xml")]

    # The next complete reading marks what is really gone, and only that.
    site.put("/two.xml", urlset(site.url("/c.html")), content_type=XML)
    sitemap = read(sitemap)
    assert gone_urls(manager.wiki) == {site.url("/d.html")}
    assert sitemap.report["complete"] is True and sitemap.report["no_longer_listed"] == 1


def linked_pages(sitemap: Sitemap) -> set[str]:
    """The pages in a sitemap's care: linked to it and not marked unlisted."""
    pages = Source.objects.filter(sitemap=sitemap).exclude(gone_reason=syncing.UNLISTED)
    return set(pages.values_list("url", flat=True))


@pytest.mark.django_db
def test_a_sitemap_whose_listing_changes_never_has_more_pages_than_the_limit(
    site, manager, settings
):
    settings.SITEMAP_MAX_PAGES = 3
    pages = [site.url(f"/p{i}.html") for i in range(8)]
    site.put("/sitemap.xml", urlset(*pages[:5]), content_type=XML)
    sitemap = read(
        syncing.sitemap_add(user=manager, collection=manager.wiki, url=site.url("/sitemap.xml"))
    )
    assert linked_pages(sitemap) == set(pages[:3]) and sitemap.report["left_out"] == 2

    # The same pages in another order: the two left out last time are left out again.
    site.put("/sitemap.xml", urlset(*reversed(pages[:5])), content_type=XML)
    sitemap = read(sitemap)
    assert linked_pages(sitemap) == set(pages[:3])
    assert sitemap.report["added"] == 0 and sitemap.report["left_out"] == 2

    # Three other pages: the old ones are no longer listed, which makes room for the new ones.
    site.put("/sitemap.xml", urlset(*pages[5:]), content_type=XML)
    sitemap = read(sitemap)
    assert linked_pages(sitemap) == set(pages[5:]) and sitemap.report["accepted"] == 3

    # Listed again beside them: no room, so they stay marked.
    site.put("/sitemap.xml", urlset(*pages[5:], *pages[:3]), content_type=XML)
    sitemap = read(sitemap)
    assert linked_pages(sitemap) == set(pages[5:]) and sitemap.report["left_out"] == 3
    assert gone_urls(manager.wiki) == set(pages[:3])


@pytest.mark.django_db
def test_an_index_listing_more_sitemaps_than_the_limit_fetches_only_the_limit(
    site, manager, settings
):
    settings.SITEMAP_MAX_FILES = 3
    children = [f"/part{i}.xml" for i in range(5)]
    site.put("/sitemap.xml", index(*(site.url(path) for path in children)), content_type=XML)
    for i, path in enumerate(children):
        site.put(path, urlset(site.url(f"/p{i}.html")), content_type=XML)

    sitemap = read(
        syncing.sitemap_add(user=manager, collection=manager.wiki, url=site.url("/sitemap.xml"))
    )

    fetched = sum(len(site.requests_for(path)) for path in children)
    assert fetched == 3 and site.requests_for("/part3.xml") == []
    assert page_urls(manager.wiki) == {site.url(f"/p{i}.html") for i in range(3)}
    assert sitemap.report["sitemaps_left_out"] == 2 and sitemap.report["complete"] is False


@pytest.mark.django_db
def test_a_sitemap_listing_pages_of_another_scheme_refuses_them(site, manager):
    other_scheme = f"https://localhost:{site.port}/b.html"  # same host and port, other scheme
    site.put("/sitemap.xml", urlset(site.url("/a.html"), other_scheme), content_type=XML)

    sitemap = read(
        syncing.sitemap_add(user=manager, collection=manager.wiki, url=site.url("/sitemap.xml"))
    )

    assert page_urls(manager.wiki) == {site.url("/a.html")}
    refused = {entry["url"]: entry["reason"] for entry in sitemap.report["refused"]}
    assert "uses https:// but the sitemap uses http://" in refused[other_scheme]


@pytest.mark.django_db
def test_a_reading_stopped_by_the_time_limit_says_so_and_comes_due_later(site, manager, settings):
    settings.URL_FETCH_TIMEOUT = 60  # the time limit, not the fetch's timeout, stops it
    site.put("/sitemap.xml", urlset(site.url("/a.html")), content_type=XML, delay=60)
    sitemap = syncing.sitemap_add(
        user=manager, collection=manager.wiki, url=site.url("/sitemap.xml"), enqueue=False
    )

    def soft_time_limit(signum, frame):  # what Celery's worker does at soft_time_limit
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, soft_time_limit)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        tasks.refresh_sitemap(sitemap.pk)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    sitemap.refresh_from_db()
    assert "took too long" in sitemap.error
    assert sitemap.check_claimed_until > timezone.now() + timedelta(minutes=30)
    assert syncing.refresh_due(now=timezone.now()).sitemap_ids == []
    later = sitemap.check_claimed_until + timedelta(seconds=1)
    assert syncing.refresh_due(now=later).sitemap_ids == [sitemap.pk]


BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>&lol9;</loc></url></urlset>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE urlset [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>&xxe;</loc></url></urlset>"""


@pytest.mark.parametrize("hostile", [BOMB, EXTERNAL_ENTITY], ids=["xml_bomb", "external_entity"])
def test_an_xml_bomb_or_external_entity_in_a_sitemap_is_refused_unread(hostile):
    with pytest.raises(syncing.SitemapParseError, match="document type or entities"):
        syncing.parse_sitemap(hostile.encode())


def test_a_file_that_is_not_a_sitemap_is_refused_with_a_clear_message():
    with pytest.raises(syncing.SitemapParseError, match="not a sitemap"):
        syncing.parse_sitemap(b"<html><body>hello</body></html>")
    with pytest.raises(syncing.SitemapParseError, match="not valid XML"):
        syncing.parse_sitemap(b"<urlset><url>")


@pytest.mark.django_db
def test_a_bomb_served_as_the_sitemap_leaves_a_clear_error_and_no_pages(site, manager):
    site.put("/sitemap.xml", BOMB, content_type=XML)

    sitemap = read(
        syncing.sitemap_add(user=manager, collection=manager.wiki, url=site.url("/sitemap.xml"))
    )

    assert "document type or entities" in sitemap.error
    assert page_urls(manager.wiki) == set()


@pytest.mark.django_db
def test_a_reader_may_not_add_a_sitemap_to_a_collection_they_do_not_manage(
    site, manager, make_user
):
    reader = make_user(email="reader@example.com")
    with pytest.raises(services.NotAllowed):
        syncing.sitemap_add(user=reader, collection=manager.wiki, url=site.url("/"))
    assert not Sitemap.objects.exists()


@pytest.mark.django_db
def test_the_same_sitemap_added_twice_is_one_sitemap(site, manager):
    first = syncing.sitemap_add(user=manager, collection=manager.wiki, url=site.url("/"))
    again = syncing.sitemap_add(user=manager, collection=manager.wiki, url=site.url("/sitemap.xml"))
    assert first.pk == again.pk and Sitemap.objects.count() == 1


@pytest.mark.django_db
def test_a_listed_page_redirecting_to_a_private_address_is_refused_when_fetched(site, manager):
    site.put("/sitemap.xml", urlset(site.url("/hop.html"), site.url("/ok.html")), content_type=XML)
    site.put("/ok.html", "<h1>Fine</h1><p>An ordinary page of the site.</p>")
    site.put("/hop.html", "", status=302, location=f"http://127.0.0.1:{site.port}/ok.html")
    read(syncing.sitemap_add(user=manager, collection=manager.wiki, url=site.url("/")))

    for source in Source.objects.all():
        services.source_index(source_id=source.pk)

    hop = Source.objects.get(url=site.url("/hop.html"))
    assert hop.status == Source.Status.FAILED and "private or local address" in hop.error
    assert Source.objects.get(url=site.url("/ok.html")).status == Source.Status.READY
    assert len(site.requests_for("/ok.html")) == 1  # only as itself, never through the hop


@pytest.mark.django_db
def test_sitemaps_are_read_again_when_due_and_never_when_their_interval_is_zero(manager, settings):
    settings.URL_REFRESH_HOURS = 24
    now = timezone.now()
    due = Sitemap.objects.create(
        collection=manager.wiki,
        url="https://a.example/sitemap.xml",
        last_checked_at=now - timedelta(hours=25),
    )
    Sitemap.objects.create(
        collection=manager.wiki,
        url="https://b.example/sitemap.xml",
        last_checked_at=now - timedelta(hours=2),
    )
    Sitemap.objects.create(
        collection=manager.wiki,
        url="https://c.example/sitemap.xml",
        last_checked_at=now - timedelta(days=400),
        refresh_hours=0,
    )

    assert syncing.refresh_due(now=now).sitemap_ids == [due.pk]
    assert syncing.refresh_due(now=now).sitemap_ids == []  # claimed


# --- the Knowledge page's "Add a whole site" form -------------------------------------------


def post_site(client, collection, url):
    return client.post(
        f"/knowledge/collections/{collection.pk}/sitemaps",
        {"url": url},
        HTTP_ACCEPT="application/json",
    )


@pytest.mark.django_db(transaction=True)
def test_a_manager_adds_a_whole_site_from_the_knowledge_page_and_its_pages_arrive(
    site, manager, client, eager_tasks
):
    site.put("/sitemap.xml", urlset(site.url("/a.html"), site.url("/b.html")), content_type=XML)
    site.put("/a.html", "<h1>A</h1><p>Alpha page of the site.</p>")
    site.put("/b.html", "<h1>B</h1><p>Beta page of the site.</p>")
    client.force_login(manager)

    reply = post_site(client, manager.wiki, site.url("/"))

    assert reply.status_code == 200 and reply.json()["ok"] is True
    assert reply.json()["sitemap"]["url"] == site.url("/sitemap.xml")
    assert "Reading" in reply.json()["message"]
    # Celery runs eagerly here: the first reading was queued on commit and has run.
    assert page_urls(manager.wiki) == {site.url("/a.html"), site.url("/b.html")}
    assert Sitemap.objects.get().owner == manager

    again = post_site(client, manager.wiki, site.url("/sitemap.xml"))
    assert "already in Wiki" in again.json()["message"] and Sitemap.objects.count() == 1


@pytest.mark.django_db
def test_the_site_form_refuses_a_private_address_before_anything_is_stored(site, manager, client):
    client.force_login(manager)

    reply = post_site(client, manager.wiki, "http://10.0.0.7/sitemap.xml")

    assert reply.status_code == 400 and reply.json()["ok"] is False
    assert "internal address" in reply.json()["error"]
    assert not Sitemap.objects.exists() and site.requests_for("/sitemap.xml") == []


@pytest.mark.django_db
def test_the_site_form_refuses_someone_elses_collection_as_if_it_did_not_exist(
    site, manager, client, make_user
):
    reader = make_user(email="reader@example.com")
    private = make_collection("Board only")
    client.force_login(reader)

    for collection in (manager.wiki, private):  # readable but not theirs; not even readable
        reply = post_site(client, collection, site.url("/"))
        assert reply.status_code == 404
    assert not Sitemap.objects.exists()


@pytest.mark.django_db
def test_the_site_form_refuses_malformed_and_oversized_addresses(manager, client):
    client.force_login(manager)
    for url in ("not a url", "ftp://intranet.example/sitemap.xml", "https://x.test/" + "a" * 2100):
        reply = post_site(client, manager.wiki, url)
        assert reply.status_code == 400 and reply.json()["error"], url
    assert not Sitemap.objects.exists()


@pytest.mark.django_db
def test_the_knowledge_page_offers_the_site_form_to_managers_only(manager, client, make_user):
    client.force_login(manager)
    page = client.get("/knowledge/").content.decode()
    assert f'action="/knowledge/collections/{manager.wiki.pk}/sitemaps"' in page
    assert "checked for changes every 24 hours" in page

    client.force_login(make_user(email="reader@example.com"))
    assert "/sitemaps" not in client.get("/knowledge/").content.decode()
