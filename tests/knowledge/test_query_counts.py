"""The knowledge page costs a fixed number of queries, however many sources it lists."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from knowledge.models import Source
from tests.support.knowledge import make_collection

pytestmark = pytest.mark.django_db


def page_queries(client) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/knowledge/")
    assert response.status_code == 200
    return len(captured)


def add_sources(collection, owner, n, start=0):
    Source.objects.bulk_create(
        Source(
            collection=collection,
            owner=owner,
            kind=Source.Kind.URL,
            name=f"https://e.test/{i}",
            url=f"https://e.test/{i}",
            status=Source.Status.READY,
        )
        for i in range(start, start + n)
    )


def test_the_knowledge_page_costs_the_same_for_3_or_60_sources(client, make_user):
    admin = make_user(email="admin@example.com", is_staff=True, is_superuser=True)
    client.force_login(admin)
    collections = [make_collection(f"C{i}", everyone=True) for i in range(3)]
    for c in collections:
        add_sources(c, admin, 1)
    few = page_queries(client)
    for n, c in enumerate(collections):
        add_sources(c, admin, 19, start=100 * (n + 1))
    assert page_queries(client) == few
