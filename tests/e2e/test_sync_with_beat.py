"""Web pages and a sitemap kept in sync by the real schedule (issue 17): a real `celery beat`
(the launcher's command line, ticking every second) queues the due checks, a real worker runs
them against a local site on 127.0.0.1 whose pages change between checks. Nothing here calls
the checks itself: a page changed is indexed again, an unchanged one costs no embedding, a page
newly listed in the sitemap is added, a page taken down is marked gone and stops answering."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from assistant.devstack.launcher import beat_argv
from knowledge import syncing
from knowledge.models import Chunk, Sitemap, Source
from knowledge.retrieval import search_chunks_for_user
from tests.support import processes
from tests.support.browser import wait_for
from tests.support.knowledge import make_collection
from tests.support.local_site import serve_site

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ENV = {
    "URL_FETCH_ALLOWED_HOSTS": "localhost",
    "URL_FETCH_ALLOWED_NETWORKS": "",
    "URL_REFRESH_TICK_SECONDS": "1",
    "URL_GONE_AFTER_TRIES": "1",
}
XML = "application/xml"
GUIDE = "<h1>Onboarding</h1><p>New starters collect their badge at reception on day one.</p>"
GUIDE_CHANGED = "<h1>Onboarding</h1><p>New starters collect their badge from the security desk.</p>"
PARKING = "<h1>Parking</h1><p>Visitor parking is behind building C, free for two hours.</p>"
CANTEEN = "<h1>Canteen</h1><p>The canteen serves lunch from noon until two.</p>"


def urlset(site, *paths: str) -> str:
    entries = "".join(f"<url><loc>{site.url(p)}</loc></url>" for p in paths)
    return f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>'


@pytest.fixture
def site(settings):
    settings.URL_FETCH_ALLOWED_HOSTS = ["localhost"]  # this process adds the sitemap
    settings.URL_FETCH_ALLOWED_NETWORKS = []
    with serve_site() as site:
        yield site


@pytest.fixture
def stack(tmp_path):
    """A worker and one beat with this module's fetch rules and a one-second refresh tick."""
    worker = processes.start_worker(name="sync-worker", **ENV)
    bin_dir = Path(sys.executable).parent
    beat = processes.ManagedProcess(
        "beat",
        beat_argv(bin_dir, tmp_path),
        processes.child_env(**ENV),
        processes.artifacts_dir() / "beat.log",
    )
    yield worker, beat
    beat.stop(timeout=0)
    processes.wait_for_background_work()
    processes.stop_and_discard_late_writes(worker)


def due_now(*, sources=(), sitemaps=()) -> None:
    """As if the refresh interval (a day) had passed since the last check."""
    long_ago = timezone.now() - timedelta(days=2)
    Source.objects.filter(pk__in=[s.pk for s in sources]).update(
        last_checked_at=long_ago, check_claimed_until=None
    )
    Sitemap.objects.filter(pk__in=[m.pk for m in sitemaps]).update(
        last_checked_at=long_ago, check_claimed_until=None
    )


def page(site, path: str) -> Source:
    return Source.objects.get(url=site.url(path))


def texts(source: Source) -> str:
    return " ".join(Chunk.objects.filter(source=source).values_list("text", flat=True))


def test_the_beat_keeps_a_sites_pages_in_sync(site, stack, admin, make_user):
    worker, beat = stack
    wiki = make_collection("Wiki", everyone=True)
    reader = make_user(email="reader@example.com")
    site.put("/sitemap.xml", urlset(site, "/guide.html", "/parking.html"), content_type=XML)
    site.put("/guide.html", GUIDE)
    site.put("/parking.html", PARKING)

    # Added as the Knowledge page adds it: the worker reads the sitemap and indexes its pages.
    sitemap = syncing.sitemap_add(user=admin, collection=wiki, url=site.url("/"))
    wait_for(
        lambda: Source.objects.filter(collection=wiki, status=Source.Status.READY).count() == 2,
        timeout=120,
        message=f"the sitemap's pages indexed:\n{worker.log_tail()}",
    )
    guide, parking = page(site, "/guide.html"), page(site, "/parking.html")
    parking_chunks = list(Chunk.objects.filter(source=parking).values_list("pk", flat=True))
    parking_checked = parking.checked_at

    # A day later: the guide changed, the canteen page is new in the sitemap, parking is as it
    # was. The beat's tick finds all three due; the worker checks them.
    site.put("/guide.html", GUIDE_CHANGED)
    site.put("/canteen.html", CANTEEN)
    site.put(
        "/sitemap.xml",
        urlset(site, "/guide.html", "/parking.html", "/canteen.html"),
        content_type=XML,
    )
    due_now(sources=[guide, parking], sitemaps=[sitemap])

    wait_for(
        lambda: "security desk" in texts(guide),
        timeout=120,
        message=f"the changed page indexed again:\n{beat.log_tail()}\n{worker.log_tail()}",
    )
    wait_for(
        lambda: Source.objects.filter(
            url=site.url("/canteen.html"), status=Source.Status.READY
        ).exists(),
        timeout=120,
        message="the newly listed page added and indexed",
    )
    wait_for(
        lambda: page(site, "/parking.html").checked_at > parking_checked,
        timeout=120,
        message="the unchanged page checked",
    )
    assert "reception" not in texts(guide)
    assert page(site, "/guide.html").last_changed_at is not None
    # Parking answered 304 or the same bytes: not one embedding, the same passages.
    assert list(Chunk.objects.filter(source=parking).values_list("pk", flat=True)) == (
        parking_chunks
    )
    assert page(site, "/parking.html").last_changed_at is None

    # The parking page is taken down: at the next check it is gone and answers nothing.
    site.remove("/parking.html", status=410)
    due_now(sources=[page(site, "/parking.html")])

    wait_for(
        lambda: page(site, "/parking.html").gone_at is not None,
        timeout=120,
        message="the removed page marked gone",
    )
    gone = page(site, "/parking.html")
    assert gone.status == Source.Status.FAILED and "410" in gone.error
    hits = search_chunks_for_user(user=reader, query="visitor parking building C", k=5).hits
    assert gone.pk not in {hit.source_id for hit in hits}
    assert page(site, "/canteen.html").pk in {
        hit.source_id
        for hit in search_chunks_for_user(user=reader, query="canteen lunch", k=5).hits
    }
