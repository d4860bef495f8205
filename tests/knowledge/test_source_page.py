"""A source's page as a citation reaches it: the cited passage itself, or word that the source
was removed, said only to those who could read it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from accounts.models import AuditEvent
from knowledge import services
from tests.support.knowledge import index_text, long_source, make_collection

pytestmark = pytest.mark.django_db

NEVER_EXISTED = 987_654


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def people(make_user):
    hr = Group.objects.create(name="hr")
    reader = make_user(email="reader@example.com")
    reader.groups.add(hr)
    return {
        "root": make_user(email="root@example.com", is_staff=True, is_superuser=True),
        "staff": make_user(email="staff@example.com", is_staff=True),
        "reader": reader,
        "outsider": make_user(email="outsider@example.com"),
        "hr": hr,
    }


# --- a citation's passage ------------------------------------------------------------------


def test_each_passage_has_an_anchor_by_its_chunk_id(client, people):
    source, chunks = long_source(make_collection("HR", readers=[people["hr"]]), 3)
    client.force_login(people["reader"])
    page = client.get(f"/knowledge/sources/{source.pk}/").content.decode()
    for chunk in chunks:
        assert f'id="chunk-{chunk.pk}"' in page


def test_a_citations_link_opens_the_page_holding_its_passage(client, people):
    source, chunks = long_source(make_collection("HR", readers=[people["hr"]]), 120)
    cited = chunks[107]  # on the third page of 50
    client.force_login(people["reader"])
    response = client.get(f"/knowledge/sources/{source.pk}/?chunk={cited.pk}")
    page = response.content.decode()
    assert response.status_code == 200
    assert f'id="chunk-{cited.pk}"' in page and "passage number 107." in page
    assert "Page 3 of 3" in page
    assert page.count("The cited passage") == 1 and 'aria-current="location"' in page


def test_a_passage_gone_since_reindexing_says_so_on_the_first_page(client, people):
    source, _ = long_source(make_collection("HR", readers=[people["hr"]]), 60)
    _, elsewhere = long_source(make_collection("Other", everyone=True), 1)
    client.force_login(people["reader"])
    for chunk_id in (elsewhere[0].pk, NEVER_EXISTED, "nonsense"):
        page = client.get(f"/knowledge/sources/{source.pk}/?chunk={chunk_id}").content.decode()
        assert "Page 1 of 2" in page
        assert "no longer in this document" in page or chunk_id == "nonsense"
        assert "passage number 0." in page


def test_a_passage_link_to_a_source_one_cannot_read_is_404(client, people):
    source, chunks = long_source(make_collection("HR", readers=[people["hr"]]), 2)
    client.force_login(people["outsider"])
    assert client.get(f"/knowledge/sources/{source.pk}/?chunk={chunks[0].pk}").status_code == 404


# --- a deleted source ----------------------------------------------------------------------


@pytest.fixture
def deleted(people):
    """An HR source deleted by root: its id."""
    collection = make_collection("HR handbook", readers=[people["hr"]])
    source = index_text(collection, "leave.md", "# Leave\n\nTwenty-five days.", user=people["root"])
    source_id = source.pk
    services.source_delete(user=people["root"], source=source)
    return source_id


def test_a_reader_of_its_collection_learns_it_was_removed_and_when_but_not_by_whom(
    client, people, deleted
):
    client.force_login(people["reader"])
    response = client.get(f"/knowledge/sources/{deleted}/")
    page = response.content.decode()
    assert response.status_code == 410
    assert "leave.md was removed" in page and "HR handbook" in page
    event = AuditEvent.objects.get(action=AuditEvent.Action.SOURCE_DELETED)
    assert event.created_at.strftime("%Y-%m-%d") in page  # the <time datetime=...>
    assert "root@example.com" not in page


def test_staff_learn_who_removed_it(client, people, deleted):
    client.force_login(people["staff"])
    response = client.get(f"/knowledge/sources/{deleted}/")
    assert response.status_code == 410
    assert "by root@example.com" in response.content.decode()


def test_someone_who_never_could_read_it_gets_the_answer_of_an_id_that_never_existed(
    client, people, deleted
):
    client.force_login(people["outsider"])
    removed = client.get(f"/knowledge/sources/{deleted}/")
    missing = client.get(f"/knowledge/sources/{NEVER_EXISTED}/")
    assert removed.status_code == missing.status_code == 404
    assert removed.content == missing.content
    assert b"leave.md" not in removed.content


def test_an_id_that_never_existed_is_404_for_staff_too(client, people, deleted):
    client.force_login(people["staff"])
    assert client.get(f"/knowledge/sources/{NEVER_EXISTED}/").status_code == 404


def test_the_deletion_records_what_the_page_needs(people, deleted):
    event = AuditEvent.objects.get(action=AuditEvent.Action.SOURCE_DELETED)
    assert event.target_id == str(deleted) and event.actor_email == "root@example.com"
    assert event.detail["name"] == "leave.md" and event.detail["title"] == "Leave"
