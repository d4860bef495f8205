"""Web pages kept in sync (knowledge.syncing) against a real site on 127.0.0.1 whose pages
change between checks: unchanged, changed, removed, unreachable, oversized, redirected to a
private address. The site is allowed by host name ("localhost"), as an operator allows an
intranet; 127.0.0.1 written as an address stays private, so a redirect there is refused."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from django.utils import timezone

from assistant.project.celery import app as celery_app
from knowledge import embeddings, services, syncing, tasks
from knowledge.models import Chunk, EmbeddingSpace, Source
from knowledge.retrieval import search_chunks_for_user
from knowledge.selectors import knowledge_versions
from knowledge.syncing import Outcome
from tests.support.events import capture_user_events
from tests.support.fake_embeddings_server import FakeEmbeddingsServer, Scripted
from tests.support.knowledge import make_collection
from tests.support.local_site import serve_site

GUIDE = "<html><body><h1>Onboarding</h1><p>New starters collect their badge at reception on day one.</p></body></html>"
GUIDE_CHANGED = "<html><body><h1>Onboarding</h1><p>New starters collect their badge from the security desk on the second floor.</p></body></html>"


@pytest.fixture
def site(settings):
    settings.URL_FETCH_ALLOWED_HOSTS = ["localhost"]
    settings.URL_FETCH_ALLOWED_NETWORKS = []
    with serve_site() as site:
        yield site


@pytest.fixture
def editors():
    return Group.objects.create(name="editors")


@pytest.fixture
def manager(make_user, editors):
    user = make_user(email="editor@example.com")
    user.groups.add(editors)
    return user


@pytest.fixture
def wiki(editors):
    return make_collection("Wiki", everyone=True, managers=[editors])


def add_page(site, collection, user, path="/guide.html", body=GUIDE) -> Source:
    """A web page added through the service and indexed in this process, as a worker would."""
    site.put(path, body)
    result = services.source_create_from_url(user=user, collection=collection, url=site.url(path))
    services.source_index(source_id=result.source.pk)
    source = Source.objects.get(pk=result.source.pk)
    assert source.status == Source.Status.READY, source.error
    return source


def chunk_ids(source: Source) -> list[int]:
    return list(Chunk.objects.filter(source=source).order_by("pk").values_list("pk", flat=True))


def refresh(source: Source) -> str:
    outcome = syncing.source_refresh(source_id=source.pk)
    source.refresh_from_db()
    return outcome


# --- one page -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_unchanged_page_costs_no_embedding_and_the_next_check_is_conditional(
    site, wiki, manager
):
    source = add_page(site, wiki, manager)
    before, indexed_at = chunk_ids(source), source.indexed_at

    # The first check has no validators yet: the full page, the same bytes, nothing re-made.
    assert refresh(source) == Outcome.UNCHANGED
    assert chunk_ids(source) == before and source.indexed_at == indexed_at
    assert source.etag and source.last_checked_at is not None
    first_checked = source.last_checked_at

    # The next one sends them back, and the server's 304 is all it costs.
    assert refresh(source) == Outcome.UNCHANGED
    last = site.requests_for("/guide.html")[-1]
    assert last.headers["if-none-match"] == source.etag
    assert last.headers["if-modified-since"] == source.last_modified
    assert chunk_ids(source) == before and source.indexed_at == indexed_at
    assert source.last_checked_at > first_checked
    assert source.last_changed_at is None  # never changed since it was added
    assert source.changed_at == indexed_at and source.checked_at == source.last_checked_at


@pytest.mark.django_db
def test_a_changed_page_is_indexed_again_and_its_new_text_replaces_the_old(site, wiki, manager):
    source = add_page(site, wiki, manager)
    old_etag = source.etag
    site.put("/guide.html", GUIDE_CHANGED)

    assert refresh(source) == Outcome.CHANGED

    texts = " ".join(Chunk.objects.filter(source=source).values_list("text", flat=True))
    assert "security desk" in texts and "reception" not in texts
    assert source.status == Source.Status.READY
    assert source.last_changed_at is not None and source.last_changed_at == source.last_checked_at
    assert source.etag != old_etag
    # The changed page's validators are the ones sent next time: a 304 again.
    assert refresh(source) == Outcome.UNCHANGED
    assert site.requests_for("/guide.html")[-1].headers["if-none-match"] == source.etag


@pytest.mark.django_db
def test_a_page_now_redirecting_to_a_private_address_is_refused_and_its_passages_stay(
    site, wiki, manager
):
    source = add_page(site, wiki, manager)
    before = chunk_ids(source)
    site.put("/secret", "<h1>Internal admin</h1><p>root password: hunter2</p>")
    site.pages["/guide.html"].location = f"http://127.0.0.1:{site.port}/secret"
    site.pages["/guide.html"].status = 302

    assert refresh(source) == Outcome.FAILED

    assert source.status == Source.Status.FAILED
    assert "private or local address" in source.error
    assert site.requests_for("/secret") == []  # never fetched
    assert chunk_ids(source) == before
    assert not Chunk.objects.filter(text__contains="hunter2").exists()


@pytest.mark.django_db
def test_an_oversized_page_is_refused_and_its_passages_stay(site, wiki, manager, settings):
    source = add_page(site, wiki, manager)
    before = chunk_ids(source)
    settings.URL_FETCH_MAX_BYTES = 4096
    site.put("/guide.html", "<p>" + "far too long. " * 2000 + "</p>")

    assert refresh(source) == Outcome.FAILED

    assert "larger than" in source.error
    assert chunk_ids(source) == before


@pytest.mark.django_db
def test_an_unreachable_site_is_tried_again_later_without_marking_the_page(site, wiki, manager):
    source = add_page(site, wiki, manager)
    site.stop()

    assert refresh(source) == Outcome.RETRY

    assert source.status == Source.Status.READY and source.error == ""
    assert source.missing_count == 0 and source.gone_at is None
    assert source.check_claimed_until > timezone.now() + timedelta(minutes=30)


@pytest.mark.django_db(transaction=True)
async def test_a_page_gone_for_three_checks_is_marked_and_its_managers_are_told(
    site, wiki, manager, make_user, settings
):
    settings.URL_GONE_AFTER_TRIES = 3
    staff = await sync_to_async(make_user)(email="staff@example.com", is_staff=True)
    reader = await sync_to_async(make_user)(email="reader@example.com")
    source = await sync_to_async(add_page)(site, wiki, manager)
    before = await sync_to_async(chunk_ids)(source)
    site.remove("/guide.html", status=410)

    async with (
        capture_user_events(manager.pk) as told,
        capture_user_events(staff.pk) as staff_told,
        capture_user_events(reader.pk) as reader_told,
    ):
        outcomes = [await sync_to_async(refresh)(source) for _ in range(2)]
        assert outcomes == [Outcome.MISSING, Outcome.MISSING]
        assert source.status == Source.Status.READY and source.missing_count == 2
        assert await told.drained() == []

        assert await sync_to_async(refresh)(source) == Outcome.GONE
        gone = [e for e in await told.drained() if e["type"] == "source.gone"]
        assert [e["source"]["id"] for e in gone] == [source.pk]
        assert [e["type"] for e in await staff_told.drained()] == ["source.gone"]
        assert await reader_told.drained() == []  # a reader manages nothing: not told

    assert source.status == Source.Status.FAILED and source.gone_at is not None
    assert "answered 410 at the last 3 checks" in source.error
    assert await sync_to_async(chunk_ids)(source) == before  # a manager decides, not a 410

    # A fourth check tells nobody again; the page coming back makes it ready again.
    async with capture_user_events(manager.pk) as told:
        assert await sync_to_async(refresh)(source) == Outcome.GONE
        assert [e["type"] for e in await told.drained()] == []
    site.put("/guide.html", GUIDE)
    assert await sync_to_async(refresh)(source) == Outcome.UNCHANGED
    assert source.status == Source.Status.READY and source.gone_at is None
    assert source.missing_count == 0 and source.error == ""


@pytest.mark.django_db
def test_a_gone_page_answers_nothing_until_it_comes_back_and_the_cache_sees_both(
    site, wiki, manager, make_user, settings
):
    """Its site took it down, perhaps on purpose: its passages stay (no embedding when it comes
    back) but no search finds them, and the collection's knowledge version moves both ways, so
    no cached answer quotes it either."""
    settings.URL_GONE_AFTER_TRIES = 1
    reader = make_user(email="reader@example.com")
    source = add_page(site, wiki, manager)
    before = chunk_ids(source)

    def found() -> list[int]:
        result = search_chunks_for_user(user=reader, query="badge at reception", k=3)
        return [hit.source_id for hit in result.hits]

    assert found() == [source.pk]
    version = knowledge_versions([wiki.pk])[wiki.pk]

    site.remove("/guide.html", status=404)
    assert refresh(source) == Outcome.GONE

    assert found() == []
    assert chunk_ids(source) == before
    gone_version = knowledge_versions([wiki.pk])[wiki.pk]
    assert gone_version != version

    site.put("/guide.html", GUIDE)
    assert refresh(source) == Outcome.UNCHANGED

    assert found() == [source.pk]
    assert knowledge_versions([wiki.pk])[wiki.pk] != gone_version


@pytest.mark.django_db
def test_a_gone_page_takes_no_place_from_the_pages_that_still_answer(
    site, wiki, manager, make_user, settings
):
    settings.URL_GONE_AFTER_TRIES = 1
    reader = make_user(email="reader@example.com")
    gone = add_page(site, wiki, manager)
    staying = add_page(site, wiki, manager, path="/badges.html", body=GUIDE_CHANGED)
    site.remove("/guide.html", status=404)
    assert refresh(gone) == Outcome.GONE

    # The gone page's passage is the closest to this question, and k is 1: the place is the
    # other page's, not nobody's.
    hits = search_chunks_for_user(user=reader, query="badge at reception on day one", k=1).hits

    assert [hit.source_id for hit in hits] == [staying.pk]


@pytest.mark.django_db
def test_a_failed_page_then_marked_gone_still_moves_the_knowledge_version(site, wiki, manager):
    """Marking changes only ``gone_at`` when the source had already failed: the version must
    move all the same, or a cached answer could still quote the page."""
    source = add_page(site, wiki, manager)
    Source.objects.filter(pk=source.pk).update(status=Source.Status.FAILED, error="parse error")
    version = knowledge_versions([wiki.pk])[wiki.pk]

    Source.objects.filter(pk=source.pk).update(gone_at=timezone.now())

    assert knowledge_versions([wiki.pk])[wiki.pk] != version


@pytest.mark.django_db
def test_a_check_whose_indexing_fails_ends_failed_never_stuck_indexing(
    site, wiki, manager, settings
):
    """A changed page is indexed within its check. The embeddings endpoint refusing the new
    text must leave the page failed with the reason (and due again), never "embedding" for
    good, where no later check would touch it."""
    with FakeEmbeddingsServer(dimensions=384) as endpoint:
        settings.EMBEDDINGS_BACKEND = "openai"
        settings.EMBEDDINGS_BASE_URL = endpoint.base_url
        settings.EMBEDDINGS_API_KEY = "test"
        settings.EMBEDDINGS_MODEL = "fake-embed"
        settings.EMBEDDINGS_DIMENSIONS = 384
        EmbeddingSpace.objects.all().delete()  # this test's index is of the endpoint's model
        embeddings.reset_embedder()
        try:
            source = add_page(site, wiki, manager)
            site.put("/guide.html", GUIDE_CHANGED)
            endpoint.enqueue(Scripted(status=400, body={"error": {"message": "input too long"}}))

            tasks.refresh_source.apply(args=[source.pk])
        finally:
            embeddings.reset_embedder()

    source.refresh_from_db()
    assert source.status == Source.Status.FAILED
    assert "input too long" in source.error or "rejected" in source.error.lower()
    assert syncing.refresh_due(now=timezone.now() + timedelta(days=2)).source_ids == [source.pk]


@pytest.mark.django_db
def test_a_hostile_validator_is_never_sent_back_as_a_header(site, wiki, manager):
    """A server's ETag is echoed in our next request: one that would smuggle a header line
    (or is absurdly long) is dropped, not stored."""
    source = add_page(site, wiki, manager)
    Source.objects.filter(pk=source.pk).update(etag='"x"\r\nX-Evil: 1')
    source.refresh_from_db()

    assert refresh(source) == Outcome.UNCHANGED

    sent = site.requests_for("/guide.html")[-1].headers
    assert "x-evil" not in sent and "if-none-match" not in sent


# --- what is due ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_due_pages_are_claimed_oldest_first_within_the_batch_and_only_once(
    wiki, manager, settings, django_capture_on_commit_callbacks
):
    settings.URL_REFRESH_HOURS = 24
    now = timezone.now()
    ages = {"a": 30, "b": 50, "c": 26, "fresh": 2}  # hours since the last check
    sources = {
        name: Source.objects.create(
            collection=wiki,
            kind=Source.Kind.URL,
            name=f"https://intranet.example/{name}",
            url=f"https://intranet.example/{name}",
            status=Source.Status.READY,
            indexed_at=now - timedelta(hours=hours),
        )
        for name, hours in ages.items()
    }

    with django_capture_on_commit_callbacks() as queued:
        due = syncing.refresh_due(now=now, limit=2)
    # The two most overdue; "a" waits for the next tick, "fresh" is not due.
    assert due.source_ids == sorted([sources["b"].pk, sources["a"].pk])
    assert len(queued) == 2
    # Claimed: the next tick does not queue them again, but does take the one left over.
    again = syncing.refresh_due(now=now, limit=10)
    assert again.source_ids == [sources["c"].pk]
    # A claim whose task was lost runs out, and the page is due again.
    later = syncing.refresh_due(now=now + syncing.CLAIM + timedelta(minutes=1), limit=10)
    assert set(later.source_ids) == {sources["a"].pk, sources["b"].pk, sources["c"].pk}


@pytest.mark.django_db
def test_the_interval_is_the_pages_own_else_its_collections_else_the_sites_and_zero_is_never(
    wiki, manager, settings
):
    settings.URL_REFRESH_HOURS = 24
    now = timezone.now()

    def page(name, hours_ago, own=None):
        return Source.objects.create(
            collection=wiki,
            kind=Source.Kind.URL,
            name=name,
            url=f"https://intranet.example/{name}",
            status=Source.Status.READY,
            last_checked_at=now - timedelta(hours=hours_ago),
            refresh_hours=own,
        )

    hourly = page("hourly", 2, own=1)
    never = page("never", 1000, own=0)
    site_default = page("daily", 25)
    assert set(syncing.refresh_due(now=now).source_ids) == {hourly.pk, site_default.pk}

    wiki.refresh_hours = 0  # the collection says never: its pages without their own setting
    wiki.save()
    Source.objects.update(check_claimed_until=None)
    assert syncing.refresh_due(now=now).source_ids == [hourly.pk]
    assert never.pk not in syncing.refresh_due(now=now + timedelta(days=3650)).source_ids


@pytest.mark.django_db
def test_busy_and_uploaded_sources_are_never_due(wiki, manager):
    now = timezone.now()
    old = now - timedelta(days=30)
    Source.objects.create(
        collection=wiki,
        kind=Source.Kind.URL,
        name="busy",
        url="https://intranet.example/busy",
        status=Source.Status.EMBEDDING,
        indexed_at=old,
    )
    Source.objects.create(
        collection=wiki, kind=Source.Kind.FILE, name="a.md", status="ready", indexed_at=old
    )
    assert syncing.refresh_due(now=now).source_ids == []


# --- through Celery, as the beat runs it ----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_beat_task_refreshes_the_due_pages_through_the_queue(site, wiki, manager, eager_tasks):
    source = add_page(site, wiki, manager)
    Source.objects.filter(pk=source.pk).update(
        indexed_at=timezone.now() - timedelta(days=2), last_checked_at=None
    )
    site.put("/guide.html", GUIDE_CHANGED)

    celery_app.tasks["knowledge.refresh_due"].delay()

    source.refresh_from_db()
    assert source.last_changed_at is not None and source.check_claimed_until is None
    assert Chunk.objects.filter(source=source, text__contains="security desk").exists()
