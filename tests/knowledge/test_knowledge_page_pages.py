"""The knowledge page lists a collection's sources a page at a time (newest first), so an ingest
backlog of thousands of queued sources costs the page one page of rows and a fixed number of
queries."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from knowledge.models import Source
from knowledge.views import SOURCES_PER_PAGE
from tests.support.knowledge import make_collection

pytestmark = pytest.mark.django_db


def add_queued_sources(collection, owner, n: int, start: int = 0) -> None:
    Source.objects.bulk_create(
        Source(
            collection=collection,
            owner=owner,
            kind=Source.Kind.URL,
            name=f"https://e.test/{i}",
            url=f"https://e.test/{i}",
            status=Source.Status.QUEUED,
        )
        for i in range(start, start + n)
    )


def rows(html: str) -> list[str]:
    return re.findall(r'<tr id="source-(\d+)"', html)


@pytest.fixture
def staff(client, make_user):
    user = make_user(email="admin@example.com", is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def test_a_collection_of_120_sources_shows_its_50_newest_and_links_to_the_older(client, staff):
    collection = make_collection("Backlog", everyone=True)
    add_queued_sources(collection, staff, 120)
    newest = list(collection.sources.values_list("pk", flat=True)[:SOURCES_PER_PAGE])

    html = client.get("/knowledge/").content.decode()

    assert rows(html) == [str(pk) for pk in newest]
    assert "Sources 1–50 of 120, newest first" in html
    assert f"?collection={collection.pk}&amp;page=2#collection-{collection.pk}" in html

    last = client.get("/knowledge/", {"collection": collection.pk, "page": 3}).content.decode()
    assert len(rows(last)) == 20
    assert "Sources 101–120 of 120" in last
    assert 'rel="next"' not in last


def test_one_collection_turning_pages_leaves_the_others_on_their_first_page(client, staff):
    first = make_collection("A", everyone=True)
    second = make_collection("B", everyone=True)
    add_queued_sources(first, staff, 60)
    add_queued_sources(second, staff, 60, start=100)

    html = client.get("/knowledge/", {"collection": first.pk, "page": 2}).content.decode()

    assert "Sources 51–60 of 60" in html
    assert "Sources 1–50 of 60" in html


@pytest.mark.parametrize("page", ["-1", "0", "abc", "99999", "1e9", "2" * 400])
def test_a_hostile_page_number_shows_a_real_page(client, staff, page):
    collection = make_collection("Backlog", everyone=True)
    add_queued_sources(collection, staff, 60)

    response = client.get("/knowledge/", {"collection": collection.pk, "page": page})

    assert response.status_code == 200
    assert len(rows(response.content.decode())) in (SOURCES_PER_PAGE, 10)


def test_paging_someone_elses_collection_shows_nothing_of_it(client, make_user):
    owner = make_user(email="owner@example.com", is_staff=True, is_superuser=True)
    secret = make_collection("Secret plans")
    add_queued_sources(secret, owner, 60)
    reader = make_user(email="reader@example.com")
    client.force_login(reader)

    response = client.get("/knowledge/", {"collection": secret.pk, "page": 2})

    assert response.status_code == 200
    html = response.content.decode()
    assert "Secret plans" not in html and rows(html) == []


def test_the_page_costs_the_same_queries_for_60_or_5000_queued_sources(client, staff):
    collection = make_collection("Backlog", everyone=True)
    add_queued_sources(collection, staff, 60)
    with CaptureQueriesContext(connection) as few:
        assert client.get("/knowledge/").status_code == 200
    add_queued_sources(collection, staff, 4940, start=1000)
    with CaptureQueriesContext(connection) as many:
        response = client.get("/knowledge/")
    assert len(many) == len(few)
    assert len(rows(response.content.decode())) == SOURCES_PER_PAGE
