"""Stale permissions: a reader keeps seeing what was taken away from them.

A source moved to a restricted collection, a collection closed to everyone, a group taken off
its read list: each must apply at the very next retrieval, in every search mode, on every write
path (the admin's forms, a shell's ``save()`` or ``update()``). The database keeps each chunk's
copy of its source's collection true, lexeme statistics included, and refuses a chunk written
with another. Trust-relevant changes land in the audit trail.
"""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, transaction

from accounts.models import AuditEvent
from knowledge import embeddings, services
from knowledge.models import EMBEDDING_DIMENSIONS, Chunk, Collection, Document, Source
from knowledge.retrieval import MODES, search_chunks_for_user
from knowledge.tasks import index_source
from tests.support.events import queued_tasks
from tests.support.fake_embeddings_server import FakeEmbeddingsServer, Scripted
from tests.support.knowledge import (
    SECRET_QUESTION,
    SECRET_TEXT,
    SECRET_WORDS,
    assert_statistics_exact,
    hr_world,
    index_text,
    make_collection,
)
from tests.support.sockets import open_socket

pytestmark = pytest.mark.django_db

SECRET = "# Salary bands\n\nThe confidential salary band for a senior engineer is 123456 kroner."
QUESTION = "salary band senior engineer kroner"
Action = AuditEvent.Action


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def world(make_user):
    """A handbook everyone reads, an HR collection only HR reads; a secret in the handbook."""
    hr = Group.objects.create(name="HR")
    root = make_user(email="root@example.com", is_staff=True, is_superuser=True)
    handbook = make_collection("Handbook", everyone=True)
    payroll = make_collection("Payroll", readers=[hr])
    index_text(
        handbook, "travel.md", "# Travel\n\nBook trains for trips under four hours.", user=root
    )
    index_text(
        payroll, "benefits.md", "# Benefits\n\nThe pension plan matches five percent.", user=root
    )
    secret = index_text(handbook, "salaries.md", SECRET, user=root)
    reader = make_user(email="reader@example.com")
    clerk = make_user(email="clerk@example.com")
    clerk.groups.add(hr)
    return SimpleNamespace(
        root=root,
        hr=hr,
        handbook=handbook,
        payroll=payroll,
        secret=secret,
        reader=reader,
        clerk=clerk,
    )


def finds(user, source: Source, mode: str) -> bool:
    hits = search_chunks_for_user(user=user, query=QUESTION, k=10, mode=mode).hits
    return any(hit.source_id == source.pk for hit in hits)


def assert_readable_only_by(world, *, readers, not_readers):
    for mode in MODES:
        for user in readers:
            assert finds(user, world.secret, mode), (user, mode)
        for user in not_readers:
            assert not finds(user, world.secret, mode), (user, mode)


def stats_of(collection: Collection, lexeme: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(ndoc), 0) FROM knowledge_lexemestat "
            "WHERE collection_id = %s AND lexeme = %s",
            [collection.pk, lexeme],
        )
        return cursor.fetchone()[0]


def assert_moved_to_payroll(world):
    assert set(
        Chunk.objects.filter(source=world.secret).values_list("collection_id", flat=True)
    ) == {world.payroll.pk}
    assert_readable_only_by(world, readers=[world.clerk, world.root], not_readers=[world.reader])
    assert_statistics_exact()  # both collections equal a fresh recount
    assert stats_of(world.handbook, "kroner") == 0 and stats_of(world.payroll, "kroner") == 1


# --- a source moved to a restricted collection --------------------------------------------


def test_before_any_move_the_secret_is_readable_by_everyone(world):
    assert_readable_only_by(world, readers=[world.reader, world.clerk], not_readers=[])


def test_a_source_moved_through_the_admin_form_is_no_longer_retrieved_by_readers_of_the_old_collection(
    client, world
):
    client.force_login(world.root)
    response = client.post(
        f"/admin/knowledge/source/{world.secret.pk}/change/",
        {"collection": world.payroll.pk, "name": world.secret.name, "_save": "Save"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    world.secret.refresh_from_db()
    assert world.secret.collection_id == world.payroll.pk
    assert_moved_to_payroll(world)
    event = AuditEvent.objects.get(action=Action.SOURCE_MOVED)
    assert event.actor == world.root and event.target_id == str(world.secret.pk)
    assert event.detail == {
        "from": {"id": world.handbook.pk, "name": "Handbook"},
        "to": {"id": world.payroll.pk, "name": "Payroll"},
    }


def test_a_source_renamed_in_the_admin_without_moving_records_no_move(client, world):
    client.force_login(world.root)
    response = client.post(
        f"/admin/knowledge/source/{world.secret.pk}/change/",
        {"collection": world.handbook.pk, "name": "salary-bands.md", "_save": "Save"},
    )
    assert response.status_code == 302
    assert Source.objects.get(pk=world.secret.pk).name == "salary-bands.md"
    assert not AuditEvent.objects.filter(action=Action.SOURCE_MOVED).exists()


def test_a_source_moved_by_a_plain_save_is_no_longer_retrieved_by_readers_of_the_old_collection(
    world,
):
    source = Source.objects.get(pk=world.secret.pk)
    source.collection = world.payroll
    source.save()
    assert_moved_to_payroll(world)


def test_a_source_moved_by_a_queryset_update_is_no_longer_retrieved_by_readers_of_the_old_collection(
    world,
):
    Source.objects.filter(pk=world.secret.pk).update(collection=world.payroll)
    assert_moved_to_payroll(world)


def test_many_sources_moved_by_one_update_keep_the_statistics_exact(world):
    # One UPDATE of several sources cascades once per source row: every cascade must count.
    Source.objects.filter(collection=world.handbook).update(collection=world.payroll)
    assert not Chunk.objects.filter(collection=world.handbook).exists()
    assert_moved_to_payroll(world)
    Source.objects.filter(collection=world.payroll).update(collection=world.handbook)
    assert not Chunk.objects.filter(collection=world.payroll).exists()
    assert_statistics_exact()


def test_a_source_moved_by_raw_sql_moves_its_chunks_too(world):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE knowledge_source SET collection_id = %s WHERE id = %s",
            [world.payroll.pk, world.secret.pk],
        )
    assert_moved_to_payroll(world)


def test_a_source_moved_through_the_service_is_audited_and_checked(world, make_user):
    editors = Group.objects.create(name="Editors")
    world.handbook.manage_groups.add(editors)
    editor = make_user(email="editor@example.com")
    editor.groups.add(editors)
    # An editor of the handbook may not push its sources into a collection they do not manage
    # (nor pull one out of it into theirs): both ends must be theirs.
    with pytest.raises(services.NotAllowed):
        services.source_move(user=editor, source=world.secret, collection=world.payroll)
    assert Chunk.objects.filter(source=world.secret, collection=world.handbook).exists()
    assert services.source_move(user=world.root, source=world.secret, collection=world.payroll)
    assert_moved_to_payroll(world)
    assert AuditEvent.objects.filter(action=Action.SOURCE_MOVED, actor=world.root).count() == 1


def test_moving_a_source_onto_a_name_already_taken_is_refused_with_a_message(world):
    taken = index_text(
        world.payroll, "salaries.md", "# Other\n\nNothing to see here.", user=world.root
    )
    with pytest.raises(services.KnowledgeError, match="already holds"):
        services.source_move(user=world.root, source=world.secret, collection=world.payroll)
    assert Source.objects.get(pk=world.secret.pk).collection_id == world.handbook.pk
    assert taken.collection_id == world.payroll.pk
    assert not AuditEvent.objects.filter(action=Action.SOURCE_MOVED).exists()


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.django_db(transaction=True)
def test_a_source_moved_while_it_is_being_indexed_lands_its_chunks_in_the_new_collection(
    make_user, settings
):
    # Indexing reads the source, embeds for a while without any lock on it, then writes the
    # chunks: a move in between must not leave them in the old collection (nor fail the write).
    # The embeddings endpoint, a real local HTTP server, holds the request open while we move.
    with FakeEmbeddingsServer(dimensions=EMBEDDING_DIMENSIONS) as server:
        settings.EMBEDDINGS_BACKEND, settings.EMBEDDINGS_BASE_URL = "openai", server.base_url
        settings.EMBEDDINGS_API_KEY, settings.EMBEDDINGS_MODEL = "test", "fake-embed"
        settings.EMBEDDINGS_DIMENSIONS = EMBEDDING_DIMENSIONS
        embeddings.reset_embedder()
        try:
            root = make_user(email="root@example.com", is_staff=True, is_superuser=True)
            reader = make_user(email="reader@example.com")
            handbook = make_collection("Handbook", everyone=True)
            payroll = make_collection("Payroll", readers=[Group.objects.create(name="HR")])
            source = Source(collection=handbook, kind=Source.Kind.FILE, name="salaries.md")
            source.file.save("salaries.md", ContentFile(SECRET.encode()))
            server.enqueue(Scripted(delay=3.0))
            errors: list[BaseException] = []

            def index() -> None:
                try:
                    services.source_index(source_id=source.pk)
                except BaseException as exc:  # reported by the assertion below
                    errors.append(exc)
                finally:
                    connection.close()

            worker = threading.Thread(target=index)
            worker.start()
            wait_until(lambda: server.calls)  # the chunks are being embedded right now
            services.source_move(user=root, source=source, collection=payroll)
            worker.join(timeout=30)
            assert not worker.is_alive() and errors == []
            source.refresh_from_db()
            assert source.status == Source.Status.READY and source.chunk_count > 0
            chunks = Chunk.objects.filter(source=source)
            assert set(chunks.values_list("collection_id", flat=True)) == {payroll.pk}
            assert not search_chunks_for_user(user=reader, query=QUESTION, mode="lexical").hits
            assert search_chunks_for_user(user=root, query=QUESTION, mode="lexical").hits
            assert_statistics_exact()
        finally:
            embeddings.reset_embedder()


# --- a chunk can never carry another collection -------------------------------------------


def test_inserting_a_chunk_with_another_collection_than_its_source_is_refused_by_the_database(
    world,
):
    chunk = Chunk.objects.filter(source=world.secret).first()
    with pytest.raises(IntegrityError), transaction.atomic():
        Chunk.objects.create(
            document=chunk.document,
            source=world.secret,
            collection=world.payroll,
            ordinal=999,
            text="smuggled",
            embedding=chunk.embedding,
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        Chunk.objects.filter(pk=chunk.pk).update(collection=world.payroll)
    assert Chunk.objects.get(pk=chunk.pk).collection_id == world.handbook.pk
    assert_statistics_exact()


def test_a_chunk_cannot_point_at_another_sources_document(world):
    chunk = Chunk.objects.filter(source=world.secret).first()
    other = Document.objects.exclude(source=world.secret).filter(source__collection=world.handbook)
    with pytest.raises(IntegrityError), transaction.atomic():
        Chunk.objects.filter(pk=chunk.pk).update(document=other.first())


# --- a collection closed, a group removed --------------------------------------------------


def collection_form(collection: Collection, **changes) -> dict:
    data = {
        "name": collection.name,
        "description": collection.description,
        "visibility": collection.visibility,
        "read_groups": [g.pk for g in collection.read_groups.all()],
        "manage_groups": [g.pk for g in collection.manage_groups.all()],
        "_save": "Save",
    }
    data.update(changes)
    return data


def test_a_collection_closed_to_everyone_in_the_admin_applies_at_the_next_retrieval(client, world):
    assert_readable_only_by(world, readers=[world.reader], not_readers=[])
    client.force_login(world.root)
    response = client.post(
        f"/admin/knowledge/collection/{world.handbook.pk}/change/",
        collection_form(world.handbook, visibility="groups", read_groups=[world.hr.pk]),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert_readable_only_by(world, readers=[world.clerk], not_readers=[world.reader])
    event = AuditEvent.objects.get(action=Action.COLLECTION_ACCESS_CHANGED)
    assert event.actor == world.root and event.target_id == str(world.handbook.pk)
    assert event.detail["before"] == {
        "visibility": "everyone",
        "read_groups": [],
        "manage_groups": [],
    }
    assert event.detail["after"] == {
        "visibility": "groups",
        "read_groups": ["HR"],
        "manage_groups": [],
    }


def test_a_collection_closed_to_everyone_by_the_orm_applies_at_the_next_retrieval(world):
    assert_readable_only_by(world, readers=[world.reader], not_readers=[])
    Collection.objects.filter(pk=world.handbook.pk).update(visibility=Collection.Visibility.GROUPS)
    assert_readable_only_by(world, readers=[world.root], not_readers=[world.reader, world.clerk])


def test_a_group_removed_from_read_groups_in_the_admin_applies_at_the_next_retrieval(client, world):
    Source.objects.filter(pk=world.secret.pk).update(collection=world.payroll)
    assert_readable_only_by(world, readers=[world.clerk], not_readers=[world.reader])
    client.force_login(world.root)
    response = client.post(
        f"/admin/knowledge/collection/{world.payroll.pk}/change/",
        collection_form(world.payroll, read_groups=[]),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert_readable_only_by(world, readers=[world.root], not_readers=[world.clerk, world.reader])
    event = AuditEvent.objects.get(action=Action.COLLECTION_ACCESS_CHANGED)
    assert event.detail["before"]["read_groups"] == ["HR"]
    assert event.detail["after"]["read_groups"] == []


def test_a_group_removed_from_read_groups_by_the_orm_applies_at_the_next_retrieval(world):
    Source.objects.filter(pk=world.secret.pk).update(collection=world.payroll)
    assert_readable_only_by(world, readers=[world.clerk], not_readers=[world.reader])
    world.payroll.read_groups.remove(world.hr)
    assert_readable_only_by(world, readers=[world.root], not_readers=[world.clerk, world.reader])


def test_editing_a_collection_without_changing_access_records_nothing(client, world):
    client.force_login(world.root)
    response = client.post(
        f"/admin/knowledge/collection/{world.payroll.pk}/change/",
        collection_form(world.payroll, description="Pay and pensions"),
    )
    assert response.status_code == 302
    assert not AuditEvent.objects.filter(action=Action.COLLECTION_ACCESS_CHANGED).exists()


def test_a_collection_created_on_the_knowledge_page_records_its_access(client, world):
    client.force_login(world.root)
    response = client.post(
        "/knowledge/collections/new",
        {"name": "Legal", "visibility": "groups", "read_groups": [world.hr.pk]},
    )
    assert response.status_code == 302
    legal = Collection.objects.get(name="Legal")
    event = AuditEvent.objects.get(action=Action.COLLECTION_ACCESS_CHANGED, target_id=str(legal.pk))
    assert event.detail["before"] is None
    assert event.detail["after"] == {
        "visibility": "groups",
        "read_groups": ["HR"],
        "manage_groups": [],
    }


# --- deletions are audited ----------------------------------------------------------------


def test_a_source_deleted_through_the_admin_page_is_audited(client, world):
    client.force_login(world.root)
    response = client.post(f"/admin/knowledge/source/{world.secret.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Source.objects.filter(pk=world.secret.pk).exists()
    assert not Chunk.objects.filter(source_id=world.secret.pk).exists()
    event = AuditEvent.objects.get(action=Action.SOURCE_DELETED)
    assert event.actor == world.root and event.target_id == str(world.secret.pk)
    assert event.target_repr == "salaries.md"
    assert event.detail["collection"] == {"id": world.handbook.pk, "name": "Handbook"}
    assert_statistics_exact()


def test_sources_deleted_by_the_admin_action_and_the_knowledge_page_are_audited(client, world):
    client.force_login(world.root)
    client.post(
        "/admin/knowledge/source/",
        {"action": "delete_selected_sources", "_selected_action": [world.secret.pk]},
    )
    travel = Source.objects.get(name="travel.md")
    client.post(f"/knowledge/sources/{travel.pk}/delete", HTTP_ACCEPT="application/json")
    deleted = AuditEvent.objects.filter(action=Action.SOURCE_DELETED)
    assert sorted(deleted.values_list("target_repr", flat=True)) == ["salaries.md", "travel.md"]


def test_a_collection_deleted_in_the_admin_is_audited_with_its_chunks_and_statistics_gone(
    client, world, django_capture_on_commit_callbacks
):
    storage, name = world.secret.file.storage, world.secret.file.name
    client.force_login(world.root)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/admin/knowledge/collection/{world.handbook.pk}/delete/", {"post": "yes"}
        )
    assert response.status_code == 302
    assert not Collection.objects.filter(pk=world.handbook.pk).exists()
    assert not Chunk.objects.filter(collection_id=world.handbook.pk).exists()
    assert not storage.exists(name)
    event = AuditEvent.objects.get(action=Action.COLLECTION_DELETED)
    assert event.actor == world.root and event.target_repr == "Handbook"
    assert event.detail["sources"] == 2 and event.detail["access"]["visibility"] == "everyone"
    assert_statistics_exact()


def test_collections_deleted_by_the_admin_bulk_action_are_audited(client, world):
    client.force_login(world.root)
    response = client.post(
        "/admin/knowledge/collection/",
        {"action": "delete_selected", "_selected_action": [world.payroll.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Collection.objects.filter(pk=world.payroll.pk).exists()
    assert AuditEvent.objects.filter(action=Action.COLLECTION_DELETED).count() == 1
    assert_statistics_exact()


# --- Privileges taken away while a socket is open --------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_demoted_staff_member_cannot_keep_reading_every_collection_over_an_open_socket(
    chat_model, make_user
):
    await sync_to_async(hr_world)(make_user)
    bob = await sync_to_async(make_user)(email="bob@example.com", is_staff=True)  # not in "hr"
    tab = await open_socket(bob)

    # Bob's staff flag is revoked (an SSO sign-in elsewhere with SSO_STAFF_GROUPS, or the admin).
    bob.is_staff = False
    await bob.asave(update_fields=["is_staff"])

    await tab.send(type="ask", request_id="r1", text=SECRET_QUESTION)
    frames = await tab.frames_until("done", "error")
    await tab.close()
    assert frames and SECRET_WORDS not in json.dumps(frames), "the socket used Bob's old staff flag"


@pytest.mark.django_db(transaction=True)
async def test_control_a_socket_opened_after_the_demotion_gets_no_hr_passage(chat_model, make_user):
    """The contrast to the attack above: the rule itself is right, only an old socket could be stale."""
    await sync_to_async(hr_world)(make_user)
    bob = await sync_to_async(make_user)(email="bob@example.com", is_staff=True)
    bob.is_staff = False
    await bob.asave(update_fields=["is_staff"])
    tab = await open_socket(bob)
    await tab.send(type="ask", request_id="r1", text=SECRET_QUESTION)
    frames = await tab.frames_until("done", "error")
    await tab.close()
    assert frames and SECRET_WORDS not in json.dumps(frames)


@pytest.mark.django_db(transaction=True)
async def test_progress_events_do_not_reach_an_uploader_who_lost_access_to_the_collection(
    make_user,
):
    def world():
        admin = make_user(email="root@example.com", is_staff=True, is_superuser=True)
        editors = Group.objects.create(name="hr-editors")
        collection = make_collection("HR", managers=[editors])
        dave = make_user(email="dave@example.com")
        dave.groups.add(editors)
        source = index_text(collection, "layoffs-2025-plan.md", SECRET_TEXT, user=dave)
        dave.groups.remove(editors)  # Dave moves to another team: no read, no manage
        return admin, dave, source

    admin, dave, source = await sync_to_async(world)()
    tab = await open_socket(dave)
    # A knowledge admin re-indexes the source: exactly one indexing task is queued, which runs
    # here as a worker would run it (the same task, the same events through Redis).
    with queued_tasks() as queued:
        await sync_to_async(services.source_reindex)(user=admin, source=source)
    assert queued.names == ["knowledge.index_source"] and queued[0].args == (source.pk,)
    await sync_to_async(index_source.apply)(args=queued[0].args)
    assert (await Source.objects.aget(pk=source.pk)).status == Source.Status.READY

    # Every event of the re-indexing was sent before the task returned; a sentinel sent now
    # reaches Dave after any of them would have.
    frames = await tab.drained()
    await tab.close()
    leaked = [f for f in frames if f.get("type", "").startswith("source.")]
    assert leaked == [], f"Dave, who may no longer read the collection, got: {leaked[:2]}"
