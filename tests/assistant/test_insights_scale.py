"""The Insights page on a year of data: 100k messages, a pinned number of queries and a
generous time bound (the machine is shared; bench/insights.py measures it properly)."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from assistant.models import Message
from tests.support.insights import bulk_year

pytestmark = pytest.mark.django_db

# The session and the user, the permission check, one statement per figure and table, the gaps
# (candidates, resolutions, collection names), the 👎 list, the newest sources, the audit row.
PAGE_QUERIES = 20
SECONDS = 20.0


def test_a_year_of_100k_messages_costs_a_fixed_number_of_queries(client, make_user):
    people = [make_user() for _ in range(20)]
    staff = make_user(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="read_user_conversations"))
    bulk_year(owners=[p.pk for p in people], pairs=50_000)
    assert Message.objects.count() == 100_000
    client.force_login(staff)
    client.get("/insights/?days=7")  # loads the embedder: not what is measured

    started = time.perf_counter()
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/insights/?days=365")
    elapsed = time.perf_counter() - started

    assert response.status_code == 200
    data = response.context["data"]
    assert data.totals["questions"] == 50_000 and data.totals["people"] == 20
    assert len(data.daily) == 365 and sum(d["answers"] for d in data.daily) == 50_000
    assert {g.count for g in data.gaps.groups} and data.gaps.questions_read == 200
    assert len(captured) == PAGE_QUERIES, [q["sql"][:120] for q in captured]
    assert elapsed < SECONDS
