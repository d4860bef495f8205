"""The browser Knowledge page: who sees what, who may change what, and how uploads are refused."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from knowledge import services
from knowledge.models import Chunk, Collection, Document, Source

pytestmark = pytest.mark.django_db

MISSING_ID = 987_654
MARKDOWN = b"# Deploying\n\nRun `make deploy` from a clean checkout.\n"
GENERATED_NAME = re.compile(r"^sources/[0-9a-f]{32}\.md$")


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def world(make_user):
    """Three collections: one for everyone, one for engineering, one for HR."""
    engineering = Group.objects.create(name="Engineering")
    eng_admins = Group.objects.create(name="Engineering admins")
    hr = Group.objects.create(name="HR")
    handbook = Collection.objects.create(name="Handbook", visibility=Collection.Visibility.EVERYONE)
    runbooks = Collection.objects.create(name="Runbooks", visibility=Collection.Visibility.GROUPS)
    runbooks.read_groups.add(engineering)
    runbooks.manage_groups.add(eng_admins)
    payroll = Collection.objects.create(name="Payroll", visibility=Collection.Visibility.GROUPS)
    payroll.read_groups.add(hr)
    reader = make_user(email="reader@example.com")
    reader.groups.add(engineering)
    manager = make_user(email="manager@example.com")
    manager.groups.add(engineering, eng_admins)
    return SimpleNamespace(
        handbook=handbook,
        runbooks=runbooks,
        payroll=payroll,
        reader=reader,
        manager=manager,
        handbook_doc=make_source(handbook, "holidays.pdf"),
        runbook_doc=make_source(runbooks, "oncall.md"),
        payroll_doc=make_source(payroll, "salaries-2025.xlsx.md"),
    )


def make_source(collection, name, **fields):
    fields.setdefault("status", Source.Status.READY)
    return Source.objects.create(collection=collection, kind=Source.Kind.FILE, name=name, **fields)


def upload(client, collection_id, name="deploy.md", data=MARKDOWN, mime="text/markdown", **extra):
    file = SimpleUploadedFile(name, data, content_type=mime)
    return client.post(f"/knowledge/collections/{collection_id}/upload", {"file": file}, **extra)


def raw_upload(client, collection_id, filename, data):
    """A multipart body built by hand: Django's test client would strip the path itself."""
    boundary = "x-test-boundary-42"
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: text/markdown\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return client.post(
        f"/knowledge/collections/{collection_id}/upload",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def stored_files(media_root) -> list:
    return [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else []


# --- who sees what ------------------------------------------------------------------------


def test_a_reader_sees_collections_open_to_everyone_and_to_their_groups_only(client, world):
    client.force_login(world.reader)
    page = client.get("/knowledge/").content.decode()
    assert "Handbook" in page and "holidays.pdf" in page
    assert "Runbooks" in page and "oncall.md" in page
    assert "Payroll" not in page and "salaries-2025" not in page


def test_a_reader_who_cannot_manage_sees_no_controls(client, world):
    client.force_login(world.reader)
    page = client.get("/knowledge/").content.decode()
    assert "data-can-manage" not in page
    assert "/upload" not in page and "/urls" not in page
    assert "Re-index" not in page.split('<template id="source-row-template">')[0]
    assert "New collection" not in page


def test_a_manager_gets_controls_only_where_they_manage(client, world):
    client.force_login(world.manager)
    page = client.get("/knowledge/").content.decode()
    assert page.count("data-can-manage") == 1
    assert f"/knowledge/collections/{world.runbooks.pk}/upload" in page
    assert f"/knowledge/collections/{world.runbooks.pk}/urls" in page
    assert f"/knowledge/collections/{world.handbook.pk}/upload" not in page
    assert f"/knowledge/sources/{world.runbook_doc.pk}/reindex" in page
    assert f"/knowledge/sources/{world.handbook_doc.pk}/reindex" not in page
    assert "New collection" not in page  # managers are not staff


def test_staff_see_every_collection_and_the_new_collection_form(client, world, make_user):
    client.force_login(make_user(is_staff=True))
    page = client.get("/knowledge/").content.decode()
    assert "Payroll" in page and "New collection" in page
    assert page.count("data-can-manage") == 3


def test_the_page_costs_the_same_queries_however_many_sources(
    client, world, django_assert_max_num_queries
):
    client.force_login(world.manager)
    client.get("/knowledge/")  # warm the session
    for i in range(30):
        make_source(world.runbooks, f"runbook-{i}.md", status=Source.Status.EMBEDDING, progress=i)
    with django_assert_max_num_queries(5):
        assert client.get("/knowledge/").status_code == 200


@pytest.mark.parametrize(
    "url",
    ["/knowledge/", "/knowledge/sources/1/", "/knowledge/sources/1/status"],
)
def test_anonymous_pages_redirect_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize(
    "url",
    [
        "/knowledge/collections/1/upload",
        "/knowledge/collections/1/urls",
        "/knowledge/sources/1/reindex",
        "/knowledge/sources/1/delete",
    ],
)
def test_anonymous_posts_redirect_to_login_and_change_nothing(client, world, url):
    response = client.post(url, {"url": "https://example.com/"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert Source.objects.count() == 3


# --- who may change what ------------------------------------------------------------------


@pytest.fixture(params=["read_only", "other_group", "missing"])
def foreign_collection_id(request, world):
    return {
        "read_only": world.handbook.pk,  # the reader may read both of these, manage neither
        "other_group": world.payroll.pk,
        "missing": MISSING_ID,
    }[request.param]


def test_a_reader_gets_404_adding_to_a_collection_they_cannot_manage(
    client, world, foreign_collection_id, media_root
):
    client.force_login(world.reader)
    assert upload(client, foreign_collection_id).status_code == 404
    response = client.post(
        f"/knowledge/collections/{foreign_collection_id}/urls", {"url": "https://example.com/a"}
    )
    assert response.status_code == 404
    assert Source.objects.count() == 3
    assert stored_files(media_root) == []


@pytest.mark.parametrize("which", ["handbook_doc", "runbook_doc", "payroll_doc", "missing"])
def test_a_reader_gets_404_reindexing_or_deleting_what_they_cannot_manage(client, world, which):
    source_id = MISSING_ID if which == "missing" else getattr(world, which).pk
    client.force_login(world.reader)
    assert client.post(f"/knowledge/sources/{source_id}/reindex").status_code == 404
    assert client.post(f"/knowledge/sources/{source_id}/delete").status_code == 404
    assert client.get(f"/knowledge/sources/{source_id}/delete").status_code == 404
    assert Source.objects.count() == 3
    assert set(Source.objects.values_list("status", flat=True)) == {Source.Status.READY}


def test_upload_and_delete_are_csrf_protected(world, media_root):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.manager)
    assert upload(client, world.runbooks.pk).status_code == 403
    assert client.post(f"/knowledge/sources/{world.runbook_doc.pk}/delete").status_code == 403
    assert Source.objects.count() == 3 and stored_files(media_root) == []

    client.get("/knowledge/")
    token = client.cookies["csrftoken"].value
    assert upload(client, world.runbooks.pk, HTTP_X_CSRFTOKEN=token).status_code == 200


# --- uploads ------------------------------------------------------------------------------


def test_a_manager_uploads_a_markdown_file(client, world, media_root):
    client.force_login(world.manager)
    response = upload(client, world.runbooks.pk, "Deploy guide.md")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["created"] is True
    assert "Deploy guide.md" in body["message"]
    source = Source.objects.get(collection=world.runbooks, name="Deploy guide.md")
    assert body["source"] == services.source_as_event(source)
    assert body["source"]["status"] == Source.Status.QUEUED
    assert source.owner == world.manager
    assert GENERATED_NAME.match(source.file.name), source.file.name
    assert (media_root / source.file.name).read_bytes() == MARKDOWN


def test_a_path_traversal_file_name_is_stored_under_a_generated_name(client, world, media_root):
    client.force_login(world.manager)
    response = raw_upload(client, world.runbooks.pk, "../../etc/passwd.md", MARKDOWN)
    assert response.status_code == 200, response.content
    source = Source.objects.get(pk=response.json()["source"]["id"])
    assert source.name == "passwd.md"
    assert GENERATED_NAME.match(source.file.name), source.file.name
    assert [p.relative_to(media_root).as_posix() for p in stored_files(media_root)] == [
        source.file.name
    ]
    page = client.get("/knowledge/").content.decode()
    assert "passwd.md" in page and "../" not in page and "etc/passwd" not in page


def test_an_oversize_body_is_refused_before_it_is_read(client, world, settings, media_root):
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 1024
    client.force_login(world.manager)
    # The declared length is enormous but the body is tiny: parsing it would fail loudly.
    response = upload(client, world.runbooks.pk, CONTENT_LENGTH=str(2**40))
    assert response.status_code == 413
    body = response.json()
    assert body["ok"] is False and "1.0" in body["error"] and "limit" in body["error"]
    assert Source.objects.count() == 3 and stored_files(media_root) == []


def test_a_file_too_big_is_refused_with_413_and_nothing_stored(client, world, settings, media_root):
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 1024
    client.force_login(world.manager)
    response = upload(client, world.runbooks.pk, data=b"# Big\n\n" + b"x" * (100 * 1024))
    assert response.status_code == 413
    assert "limit" in response.json()["error"]
    assert Source.objects.count() == 3 and stored_files(media_root) == []


def test_a_file_just_over_the_limit_is_refused_by_the_service(client, world, settings, media_root):
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 1024
    client.force_login(world.manager)
    response = upload(client, world.runbooks.pk, data=b"# Big\n\n" + b"x" * 2048)
    assert response.status_code == 400
    assert "limit" in response.json()["error"]
    assert Source.objects.count() == 3 and stored_files(media_root) == []


def test_an_unsupported_type_is_refused_with_the_supported_list(client, world, media_root):
    client.force_login(world.manager)
    response = upload(
        client, world.runbooks.pk, "installer.exe", b"MZ\x90\x00binary", "application/x-msdownload"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert "not supported" in error and ".md" in error and ".pdf" in error
    assert Source.objects.count() == 3 and stored_files(media_root) == []


def test_an_empty_request_is_refused(client, world):
    client.force_login(world.manager)
    response = client.post(f"/knowledge/collections/{world.runbooks.pk}/upload")
    assert response.status_code == 400
    assert response.json() == {"ok": False, "error": "Send exactly one file per upload."}


def test_a_duplicate_upload_does_not_make_a_second_source(client, world):
    client.force_login(world.manager)
    first = upload(client, world.runbooks.pk, "deploy.md").json()
    again = upload(client, world.runbooks.pk, "deploy.md").json()
    renamed = upload(client, world.runbooks.pk, "deploy (copy).md").json()
    assert first["created"] is True
    assert again["ok"] is True and again["created"] is False and "unchanged" in again["message"]
    assert renamed["created"] is False and "same contents" in renamed["message"]
    assert again["source"]["id"] == renamed["source"]["id"] == first["source"]["id"]
    assert Source.objects.filter(collection=world.runbooks).count() == 2  # oncall.md + deploy.md


def test_a_form_post_without_javascript_gets_a_redirect_and_a_message(client, world):
    client.force_login(world.manager)
    response = upload(client, world.runbooks.pk, "notes.md", HTTP_ACCEPT="text/html,*/*;q=0.8")
    assert response.status_code == 302 and response["Location"] == "/knowledge/"
    page = client.get("/knowledge/").content.decode()
    assert "notes.md added; indexing." in page


# --- web pages ----------------------------------------------------------------------------


def test_a_manager_adds_a_web_page(client, world):
    client.force_login(world.manager)
    url = "https://intranet.example.com/handbook"
    response = client.post(f"/knowledge/collections/{world.runbooks.pk}/urls", {"url": url})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["ok"] is True and body["created"] is True
    source = Source.objects.get(pk=body["source"]["id"])
    assert (source.kind, source.url, source.collection) == (Source.Kind.URL, url, world.runbooks)
    again = client.post(f"/knowledge/collections/{world.runbooks.pk}/urls", {"url": url}).json()
    assert again["created"] is False and "already" in again["message"]


@pytest.mark.parametrize("url", ["not a url", "javascript:alert(1)", "ftp://example.com/x"])
def test_a_bad_web_address_is_refused_with_a_message(client, world, url):
    client.force_login(world.manager)
    response = client.post(f"/knowledge/collections/{world.runbooks.pk}/urls", {"url": url})
    assert response.status_code == 400
    assert response.json()["ok"] is False and response.json()["error"]
    assert not Source.objects.filter(kind=Source.Kind.URL).exists()


# --- re-index and delete ------------------------------------------------------------------


def test_a_manager_reindexes_a_source(client, world):
    client.force_login(world.manager)
    response = client.post(f"/knowledge/sources/{world.runbook_doc.pk}/reindex")
    assert response.status_code == 200
    assert response.json()["source"]["status"] == Source.Status.QUEUED
    world.runbook_doc.refresh_from_db()
    assert world.runbook_doc.status == Source.Status.QUEUED


def test_a_manager_deletes_a_source_after_confirming(client, world):
    client.force_login(world.manager)
    confirm = client.get(f"/knowledge/sources/{world.runbook_doc.pk}/delete")
    assert confirm.status_code == 200 and "oncall.md" in confirm.content.decode()
    assert Source.objects.filter(pk=world.runbook_doc.pk).exists()
    response = client.post(f"/knowledge/sources/{world.runbook_doc.pk}/delete")
    assert response.status_code == 200 and response.json()["ok"] is True
    assert not Source.objects.filter(pk=world.runbook_doc.pk).exists()


# --- chunks and status --------------------------------------------------------------------


def make_chunks(source, texts, **fields):
    document = Document.objects.create(source=source, title=source.name, text="", content_hash="h")
    return Chunk.objects.bulk_create(
        [
            Chunk(
                document=document,
                source=source,
                collection=source.collection,
                ordinal=i,
                text=text,
                embedding=[0.0] * 384,
                **fields,
            )
            for i, text in enumerate(texts)
        ]
    )


def test_the_chunks_page_escapes_document_content(client, world):
    make_chunks(
        world.runbook_doc,
        ['<script>alert("x")</script> & more'],
        heading_path=["<img src=x onerror=alert(1)>"],
        page=3,
        token_count=12,
    )
    client.force_login(world.reader)
    response = client.get(f"/knowledge/sources/{world.runbook_doc.pk}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "page 3" in page and "12 tokens" in page


def test_the_chunks_page_is_paginated_by_50(client, world):
    make_chunks(world.runbook_doc, [f"passage number {i}." for i in range(51)])
    client.force_login(world.reader)
    first = client.get(f"/knowledge/sources/{world.runbook_doc.pk}/").content.decode()
    second = client.get(f"/knowledge/sources/{world.runbook_doc.pk}/?page=2").content.decode()
    assert "passage number 49." in first and "passage number 50." not in first
    assert "passage number 50." in second and "passage number 0." not in second


def test_chunks_of_another_groups_source_are_404(client, world):
    make_chunks(world.payroll_doc, ["secret salaries"])
    client.force_login(world.reader)
    assert client.get(f"/knowledge/sources/{world.payroll_doc.pk}/").status_code == 404
    assert client.get(f"/knowledge/sources/{MISSING_ID}/").status_code == 404


def test_status_json_for_readers_and_404_for_other_groups(client, world):
    client.force_login(world.reader)
    response = client.get(f"/knowledge/sources/{world.runbook_doc.pk}/status")
    assert response.status_code == 200
    assert response.json() == services.source_as_event(world.runbook_doc)
    assert client.get(f"/knowledge/sources/{world.payroll_doc.pk}/status").status_code == 404
    assert client.get(f"/knowledge/sources/{MISSING_ID}/status").status_code == 404


def test_batch_status_leaves_out_what_the_reader_may_not_see(client, world):
    client.force_login(world.reader)
    ids = [world.runbook_doc.pk, world.payroll_doc.pk, world.handbook_doc.pk, MISSING_ID]
    response = client.get("/knowledge/sources/status", {"ids": ",".join(map(str, ids))})
    assert response.status_code == 200
    returned = {source["id"] for source in response.json()["sources"]}
    assert returned == {world.runbook_doc.pk, world.handbook_doc.pk}
    assert client.get("/knowledge/sources/status", {"ids": "1,x"}).status_code == 400


# --- one row, rendered on the server for the page to swap in ---------------------------------

ROW = re.compile(r'<tr id="source-(\d+)".*?</tr>', re.S)
CSRF_INPUT = re.compile(r'(name="csrfmiddlewaretoken" value=")[^"]*"')
UPDATED = re.compile(r'(data-field="updated">)[^<]*(</time>)')


def rows_in(html: str) -> dict[int, str]:
    """Each row's markup by source id, with what differs between two renderings blanked: the
    CSRF token (masked anew each time) and the "Updated" text (a swapped row says "just now")."""

    def normal(row: str) -> str:
        return UPDATED.sub(r"\1\2", CSRF_INPUT.sub(r'\1"', row))

    return {int(m.group(1)): normal(m.group(0)) for m in ROW.finditer(html)}


def test_a_row_is_the_row_the_page_shows(client, world):
    world.runbook_doc.error = "Parse failed: <b>bad</b> table"
    world.runbook_doc.save()
    client.force_login(world.manager)
    page = rows_in(client.get("/knowledge/").content.decode())
    for source in (world.runbook_doc, world.handbook_doc):  # one managed, one only read
        response = client.get(f"/knowledge/sources/{source.pk}/row")
        assert response.status_code == 200
        assert response["Cache-Control"].startswith("max-age=0")
        assert rows_in(response.content.decode()) == {source.pk: page[source.pk]}
    row = client.get(f"/knowledge/sources/{world.runbook_doc.pk}/row").content.decode()
    assert f"/knowledge/sources/{world.runbook_doc.pk}/reindex" in row
    assert "Parse failed: &lt;b&gt;bad&lt;/b&gt; table" in row
    assert 'data-field="updated">just now</time>' in row  # as a row refreshed live always said
    handbook_row = client.get(f"/knowledge/sources/{world.handbook_doc.pk}/row").content.decode()
    assert "Re-index" not in handbook_row and "Delete" not in handbook_row


def test_a_row_of_a_source_in_another_groups_collection_is_404_like_a_missing_one(client, world):
    client.force_login(world.reader)
    assert client.get(f"/knowledge/sources/{world.runbook_doc.pk}/row").status_code == 200
    forbidden = client.get(f"/knowledge/sources/{world.payroll_doc.pk}/row")
    missing = client.get(f"/knowledge/sources/{MISSING_ID}/row")
    assert forbidden.status_code == missing.status_code == 404
    assert forbidden.content == missing.content
    assert b"salaries" not in forbidden.content


def test_a_row_needs_a_signed_in_user(client, world):
    response = client.get(f"/knowledge/sources/{world.handbook_doc.pk}/row")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_rows_in_a_batch_leave_out_what_the_reader_may_not_see(client, world):
    client.force_login(world.manager)
    ids = [world.runbook_doc.pk, world.payroll_doc.pk, world.handbook_doc.pk, MISSING_ID]
    response = client.get("/knowledge/sources/rows", {"ids": ",".join(map(str, ids))})
    assert response.status_code == 200
    page = rows_in(client.get("/knowledge/").content.decode())
    rows = rows_in(response.content.decode())
    assert set(rows) == {world.runbook_doc.pk, world.handbook_doc.pk}
    assert all(rows[pk] == page[pk] for pk in rows)  # controls only where they manage
    assert client.get("/knowledge/sources/rows", {"ids": "1,x"}).status_code == 400
    assert rows_in(client.get("/knowledge/sources/rows").content.decode()) == {}


def test_rows_in_a_batch_cost_the_same_queries_however_many(
    client, world, django_assert_max_num_queries
):
    client.force_login(world.manager)
    client.get("/knowledge/")  # warm the session
    made = [
        make_source(world.runbooks, f"runbook-{i}.md", status=Source.Status.EMBEDDING)
        for i in range(30)
    ]
    ids = ",".join(str(source.pk) for source in made)
    with django_assert_max_num_queries(4):
        response = client.get("/knowledge/sources/rows", {"ids": ids})
    assert len(rows_in(response.content.decode())) == 30


# --- new collections ----------------------------------------------------------------------


def test_only_staff_may_create_collections(client, world):
    client.force_login(world.manager)
    response = client.post(
        "/knowledge/collections/new", {"name": "Secret", "visibility": "everyone"}
    )
    assert response.status_code == 403
    assert not Collection.objects.filter(name="Secret").exists()


def test_a_duplicate_collection_name_is_refused_on_the_form(client, world, make_user):
    client.force_login(make_user(is_staff=True))
    response = client.post(
        "/knowledge/collections/new", {"name": "handbook", "visibility": "everyone"}
    )
    assert response.status_code == 400
    assert "already exists" in response.content.decode()


def test_staff_create_a_collection_for_chosen_groups(client, world, make_user):
    client.force_login(make_user(is_staff=True))
    hr = Group.objects.get(name="HR")
    response = client.post(
        "/knowledge/collections/new",
        {
            "name": "Benefits",
            "description": "Perks",
            "visibility": "groups",
            "read_groups": [hr.pk],
            "manage_groups": [hr.pk],
        },
    )
    assert response.status_code == 302
    created = Collection.objects.get(name="Benefits")
    assert created.visibility == Collection.Visibility.GROUPS
    assert list(created.read_groups.all()) == [hr] and list(created.manage_groups.all()) == [hr]
