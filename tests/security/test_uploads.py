"""Hostile uploads: zip archives built to cost the web process CPU and memory before anything
could refuse them (a DOCX is a zip, and its kind is checked in the upload request).

Every archive is built here byte by byte: a central directory of a million records needs no
file data, only 46 bytes a record, so it is made in milliseconds. Each is refused with a clear
4xx by the upload view (nothing stored), and by the parser without a database.
"""

from __future__ import annotations

import io
import struct
import time
from types import SimpleNamespace

import docx
import pytest
from django.contrib.auth.models import Group

from knowledge.models import Collection, Source
from knowledge.parsing import ParseError, ParseLimits, detect_kind, parse_document
from knowledge.parsing.docx import safe_copy

MILLION = 1_000_000
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


# --- archives, byte by byte ---------------------------------------------------------------


def central(name: bytes = b"", *, size: int = 0, extra: bytes = b"") -> bytes:
    """One central-directory record (no local header or data behind it: zipfile never looks)."""
    # signature, versions, flags, method, time, date, crc, compressed and uncompressed size,
    # name, extra and comment lengths, disk, attributes, local header offset
    fields = (20, 20, 0, 0, 0, 0, 0, 0, size, len(name), len(extra), 0, 0, 0, 0, 0)
    return struct.pack("<4s6H3L5H2L", b"PK\x01\x02", *fields) + name + extra


def end_record(entries: int, size: int, offset: int, comment: bytes = b"") -> bytes:
    return (
        struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, entries, entries, size, offset, len(comment))
        + comment
    )


def zip64_end(entries: int, size: int, offset: int, comment: bytes = b"") -> bytes:
    """zip64 end record and locator, then a classic end record that defers to them."""
    record_at = offset + size
    return (
        struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, size, offset)
        + struct.pack("<4sLQL", b"PK\x06\x07", 0, record_at, 1)
        + end_record(0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, comment)
    )


def archive(records: bytes, entries: int, *, zip64: bool = False, comment: bytes = b"") -> bytes:
    """A zip holding only a central directory at offset 0 (it starts with b"PK", like a zip)."""
    if zip64:
        return records + zip64_end(entries, len(records), 0, comment)
    return records + end_record(entries, len(records), 0, comment)


DOCUMENT = central(b"word/document.xml", size=1000)


def million_entries(**kwargs) -> bytes:
    # One real-looking part, so a zip library that opened it would take it for a Word file.
    return archive(DOCUMENT + central() * (MILLION - 1), MILLION, zip64=True, **kwargs)


def ten_gigabytes() -> bytes:
    big = central(
        b"word/media/huge.bin",
        size=0xFFFFFFFF,
        extra=struct.pack("<2HQ", 0x0001, 8, 10 * 2**30),
    )
    return archive(DOCUMENT + big, 2)


def billions_claimed() -> bytes:
    # The classic record says 65535 (the zip64 marker); the zip64 one says five billion.
    records = DOCUMENT + central(b"word/styles.xml", size=100)
    return archive(records, 5_000_000_000, zip64=True)


def count_that_lies() -> bytes:
    # The end record admits to 2 entries; the directory holds 300,000 (zipfile reads them all).
    return archive(DOCUMENT + central() * 299_999, 2)


def garbage_end_record() -> bytes:
    return DOCUMENT + end_record(1, 10 * 2**20, 12345)


def truncated_end_record() -> bytes:
    return (DOCUMENT + end_record(1, len(DOCUMENT), 0))[:-7]


def fake_end_record_in_comment() -> bytes:
    # A second end-record signature hidden in the comment: the last one found is what zipfile
    # reads, so a check reading the first would vet another directory than the one opened.
    comment = b"x" * 100 + end_record(1, 46, 0) + b"y" * 100
    return million_entries(comment=comment)


def trailing_junk() -> bytes:
    # The end record says "no comment" but 1,000 bytes follow it: zipfile still finds it.
    return million_entries() + b"\x00" * 1000


HOSTILE = {
    "a million entries": (million_entries, "too many parts"),
    "a million entries behind a comment": (
        lambda: million_entries(comment=b"c" * 60_000),
        "too many parts",
    ),
    "a declared 10 GB entry": (ten_gigabytes, "zip bomb"),
    "65535 entries and a zip64 record claiming billions": (billions_claimed, "too many parts"),
    "an entry count that lies": (count_that_lies, "too many parts"),
    "a garbage end record": (garbage_end_record, "not a valid Word document"),
    "a truncated end record": (truncated_end_record, "not a valid Word document"),
    "a fake end record in the comment": (fake_end_record_in_comment, "not a valid Word document"),
    "junk after the end record": (trailing_junk, "not a valid Word document"),
}


def real_docx() -> bytes:
    document = docx.Document()
    document.add_heading("Travel", level=1)
    document.add_paragraph("Book trains for trips under four hours.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


# --- the parser, without a database -------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE)
def test_the_parser_refuses_a_hostile_zip_before_any_zip_library_opens_it(name):
    build, message = HOSTILE[name]
    data = build()
    started = time.perf_counter()
    with pytest.raises(ParseError, match=message):
        detect_kind(data, filename="report.docx", content_type=DOCX_TYPE)
    assert time.perf_counter() - started < 0.05, "a refusal in milliseconds, not a parse"
    with pytest.raises(ParseError, match=message):
        parse_document(data, filename="report.docx")


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_zip_without_an_extension_is_refused_when_sniffed_too(name):
    build, message = HOSTILE[name]
    with pytest.raises(ParseError):
        detect_kind(build(), filename="report")


def test_the_safe_copy_checks_the_directory_before_opening_the_archive():
    with pytest.raises(ParseError, match="too many parts"):
        safe_copy(million_entries(), ParseLimits())
    with pytest.raises(ParseError, match="zip bomb"):
        safe_copy(ten_gigabytes(), ParseLimits())
    with pytest.raises(ParseError, match="could not be read"):
        safe_copy(trailing_junk(), ParseLimits())


def test_the_directory_size_is_bounded_however_few_entries_are_declared():
    # 100,000 records of long names: few enough for a loose entry limit, too big a directory.
    name = b"word/" + b"n" * 200
    data = archive(DOCUMENT + central(name) * 100_000, 100_001, zip64=True)
    with pytest.raises(ParseError, match="too many parts"):
        detect_kind(data, filename="x.docx", limits=ParseLimits(max_zip_entries=10**9))


def test_a_real_word_document_still_passes_the_checks():
    data = real_docx()
    assert detect_kind(data, filename="travel.docx") == "docx"
    assert detect_kind(data, filename="travel") == "docx"
    assert "Book trains" in parse_document(data, filename="travel.docx").text


# --- the upload request -------------------------------------------------------------------


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def place(db, make_user):
    editors = Group.objects.create(name="Editors")
    collection = Collection.objects.create(name="Policies", visibility=Collection.Visibility.GROUPS)
    collection.manage_groups.add(editors)
    manager = make_user(email="editor@example.com")
    manager.groups.add(editors)
    return SimpleNamespace(collection=collection, manager=manager)


def multipart(filename: str, data: bytes) -> tuple[bytes, str]:
    """The request body, built before the clock starts (the test client would copy it twice)."""
    boundary = "hostile-zip-boundary"
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {DOCX_TYPE}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def post_upload(client, collection, filename: str, data: bytes):
    body, content_type = multipart(filename, data)
    started = time.perf_counter()
    response = client.post(
        f"/knowledge/collections/{collection.pk}/upload", data=body, content_type=content_type
    )
    return response, time.perf_counter() - started


def stored_files(media_root) -> list:
    return [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else []


def test_a_50_mb_docx_of_a_million_entries_is_refused_in_the_upload_request_at_once(
    client, place, media_root
):
    data = million_entries()
    assert 40 * 2**20 < len(data) < 50 * 2**20  # under the upload limit
    client.force_login(place.manager)
    post_upload(client, place.collection, "warm-up.docx", b"PK")  # the URLconf's first import
    response, elapsed = post_upload(client, place.collection, "million.docx", data)
    assert response.status_code == 400, response.content[:300]
    assert "too many parts" in response.json()["error"]
    assert elapsed < 0.5, f"refused in {elapsed:.2f}s: the archive was parsed, not refused"
    assert not Source.objects.exists() and stored_files(media_root) == []


@pytest.mark.parametrize("name", HOSTILE)
def test_every_hostile_zip_is_refused_by_the_upload_view_and_nothing_is_stored(
    client, place, media_root, name
):
    build, message = HOSTILE[name]
    client.force_login(place.manager)
    response, elapsed = post_upload(client, place.collection, "report.docx", build())
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert body["ok"] is False and message in body["error"] and "report.docx" in body["error"]
    assert elapsed < 1.0
    assert not Source.objects.exists() and stored_files(media_root) == []


def test_a_hostile_zip_renamed_without_an_extension_is_refused_by_the_upload_view(
    client, place, media_root
):
    client.force_login(place.manager)
    body, _ = multipart("report", million_entries())
    body = body.replace(DOCX_TYPE.encode(), b"application/octet-stream", 1)
    response = client.post(
        f"/knowledge/collections/{place.collection.pk}/upload",
        data=body,
        content_type="multipart/form-data; boundary=hostile-zip-boundary",
    )
    assert response.status_code == 400 and "too many parts" in response.json()["error"]
    assert not Source.objects.exists() and stored_files(media_root) == []


def test_a_real_word_document_is_still_accepted_by_the_upload_view(client, place, media_root):
    client.force_login(place.manager)
    response, _ = post_upload(client, place.collection, "travel.docx", real_docx())
    assert response.status_code == 200, response.content[:300]
    assert response.json()["created"] is True
    assert Source.objects.get().content_type == "docx" and len(stored_files(media_root)) == 1
