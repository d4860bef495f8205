"""Every source says when it was last checked against its original and when it last changed:
on the knowledge page's row and in the admin's list."""

from datetime import timedelta

import pytest
from django.utils import timezone

from knowledge.models import Source
from tests.support.knowledge import make_collection

pytestmark = pytest.mark.django_db


def _stamp(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


@pytest.fixture
def page():
    collection = make_collection("Wiki", everyone=True)
    now = timezone.now()
    return Source.objects.create(
        collection=collection,
        kind=Source.Kind.URL,
        name="https://intranet.example/guide",
        url="https://intranet.example/guide",
        status=Source.Status.READY,
        indexed_at=now - timedelta(days=40),
        last_changed_at=now - timedelta(days=3),
        last_checked_at=now - timedelta(hours=2),
    )


def test_the_knowledge_row_shows_when_a_page_was_checked_and_changed(client, make_user, page):
    client.force_login(make_user(email="reader@example.com"))

    row = client.get(f"/knowledge/sources/{page.pk}/row").content.decode()

    assert 'class="source-dates"' in row and "Checked <time" in row
    assert _stamp(page.last_checked_at) in row and _stamp(page.last_changed_at) in row
    whole = client.get("/knowledge/").content.decode()
    assert _stamp(page.last_checked_at) in whole and _stamp(page.last_changed_at) in whole


def test_a_source_never_checked_again_shows_its_indexing_as_both(client, make_user, page):
    Source.objects.filter(pk=page.pk).update(last_checked_at=None, last_changed_at=None)
    client.force_login(make_user(email="reader@example.com"))

    row = client.get(f"/knowledge/sources/{page.pk}/row").content.decode()

    assert row.count(_stamp(page.indexed_at)) == 2


def test_a_source_not_yet_indexed_shows_no_dates(client, make_user, page):
    Source.objects.filter(pk=page.pk).update(
        last_checked_at=None, last_changed_at=None, indexed_at=None
    )
    client.force_login(make_user(email="reader@example.com"))

    assert "Checked" not in client.get(f"/knowledge/sources/{page.pk}/row").content.decode()


def test_the_admin_lists_when_each_source_was_checked_and_changed(client, make_user, page):
    client.force_login(make_user(email="root@example.com", is_staff=True, is_superuser=True))

    listing = client.get("/admin/knowledge/source/").content.decode()

    assert _stamp(page.last_checked_at) in listing
    changed_day = timezone.localtime(page.last_changed_at).strftime("%Y-%m-%d")
    assert f"<small>changed {changed_day}</small>" in listing
    change = client.get(f"/admin/knowledge/source/{page.pk}/change/").content.decode()
    assert "Last checked at" in change and "Last changed at" in change
