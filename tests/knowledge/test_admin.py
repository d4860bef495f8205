"""Knowledge in the Django admin: the same access rule, actions that go through the services."""

import pytest
from django.contrib.auth.models import Group

from knowledge.models import Chunk, Source
from tests.support.knowledge import index_text, make_collection

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(make_user):
    return make_user(email="root@example.com", is_staff=True, is_superuser=True)


@pytest.fixture
def indexed(root):
    collection = make_collection("Handbook", readers=[Group.objects.create(name="staff")])
    source = index_text(
        collection, "travel.md", "# Travel\n\nBook flights through the travel desk.", user=root
    )
    return collection, source


def test_collections_show_their_groups_and_source_counts(client, root, indexed):
    client.force_login(root)
    page = client.get("/admin/knowledge/collection/").content.decode()
    assert "Handbook" in page and ">1<" in page
    change = client.get(f"/admin/knowledge/collection/{indexed[0].pk}/change/").content.decode()
    assert "read_groups" in change and "manage_groups" in change


def test_sources_list_status_and_chunk_counts_and_cannot_be_added_by_hand(client, root, indexed):
    client.force_login(root)
    page = client.get("/admin/knowledge/source/").content.decode()
    assert "travel.md" in page and "Ready" in page
    assert client.get("/admin/knowledge/source/add/").status_code == 403


def test_the_reindex_action_queues_the_source(client, root, indexed):
    _, source = indexed
    client.force_login(root)
    response = client.post(
        "/admin/knowledge/source/", {"action": "reindex_selected", "_selected_action": [source.pk]}
    )
    assert response.status_code == 302
    source.refresh_from_db()
    assert source.status == Source.Status.QUEUED and source.indexed_hash == ""


def test_the_delete_action_removes_chunks_and_the_file(
    client, root, indexed, django_capture_on_commit_callbacks
):
    _, source = indexed
    storage, name = source.file.storage, source.file.name
    assert storage.exists(name)
    client.force_login(root)
    with django_capture_on_commit_callbacks(execute=True):  # the file goes after commit
        client.post(
            "/admin/knowledge/source/",
            {"action": "delete_selected_sources", "_selected_action": [source.pk]},
        )
    assert not Source.objects.filter(pk=source.pk).exists()
    assert not Chunk.objects.filter(source_id=source.pk).exists()
    assert not storage.exists(name)


def test_chunks_are_read_only_and_searchable(client, root, indexed):
    client.force_login(root)
    chunk = Chunk.objects.first()
    assert "travel desk" in client.get("/admin/knowledge/chunk/?q=desk").content.decode()
    assert "travel desk" not in client.get("/admin/knowledge/chunk/?q=zebra").content.decode()
    response = client.post(f"/admin/knowledge/chunk/{chunk.pk}/change/", {"text": "tampered"})
    assert response.status_code == 403
    chunk.refresh_from_db()
    assert chunk.text != "tampered"


def test_staff_without_superuser_manage_every_collection_in_the_admin(
    client, make_user, root, indexed
):
    editors = Group.objects.create(name="editors")
    mine = make_collection("Team wiki", managers=[editors])
    clerk = make_user(email="clerk@example.com", is_staff=True)
    clerk.groups.add(editors)
    from django.contrib.auth.models import Permission

    clerk.user_permissions.add(*Permission.objects.filter(content_type__app_label="knowledge"))
    client.force_login(clerk)
    page = client.get("/admin/knowledge/collection/").content.decode()
    # Staff may manage every collection (the access rule), so both are listed.
    assert "Team wiki" in page and "Handbook" in page
    assert mine.pk


def test_a_failed_sources_reason_is_in_the_list_shortened_with_the_full_text_on_hover(
    client, root, indexed
):
    collection, _ = indexed
    reason = "The server answered 503 Service Unavailable. " * 4
    Source.objects.create(
        collection=collection,
        kind=Source.Kind.URL,
        name="https://wiki.example.com/x",
        url="https://wiki.example.com/x",
        status=Source.Status.FAILED,
        error=reason,
    )
    client.force_login(root)
    page = client.get("/admin/knowledge/source/").content.decode()
    assert "Failed: <span" in page and "The server answered 503 Service Unavailable." in page
    assert f'title="{reason}"' in page


def test_a_hostile_source_name_and_reason_are_escaped_in_the_list(client, root, indexed):
    collection, _ = indexed
    hostile = '<img src=x onerror=alert(1)>"' + "x" * 100
    Source.objects.create(
        collection=collection,
        kind=Source.Kind.FILE,
        name=hostile,
        status=Source.Status.FAILED,
        error=hostile,
    )
    client.force_login(root)
    page = client.get("/admin/knowledge/source/").content.decode()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;&quot;" in page
