"""Document parsing: bytes in, sections out, hostile files refused within bounded resources.

Every input is built here (hand-written PDFs, python-docx documents, zlib bombs) except the
Django documentation pages in tests/fixtures/django-docs, which are real published HTML.
"""

import builtins
import io
import os
import struct
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import docx
import pypdf
import pytest

from knowledge.parsing import (
    SUPPORTED_EXTENSIONS,
    ParsedDocument,
    ParseError,
    ParseLimits,
    Section,
    UnsupportedType,
    detect_kind,
    parse_document,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


# --- builders --------------------------------------------------------------------------


def pdf_bytes(streams: list[bytes], *, info: dict[str, str] | None = None) -> bytes:
    """A minimal PDF: one page per content stream (already encoded: pass filters in `raw`)."""
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")  # object 3
    kids = []
    for stream in streams:
        header, body = stream if isinstance(stream, tuple) else (b"", stream)
        objects.append(
            b"<< /Length %d %s>>\nstream\n" % (len(body), header) + body + b"\nendstream"
        )
        content = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % content
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    if info:
        entries = b" ".join(b"/%s (%s)" % (k.encode(), v.encode()) for k, v in info.items())
        objects.append(b"<< " + entries + b" >>")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    trailer = b"<< /Size %d /Root 1 0 R" % (len(objects) + 1)
    if info:
        trailer += b" /Info %d 0 R" % len(objects)
    out += b"trailer\n" + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def text_page(*lines: str) -> bytes:
    ops = [b"BT /F1 12 Tf 72 720 Td 14 TL"]
    ops += [b"(%s) Tj T*" % line.encode("latin-1") for line in lines]
    return b"\n".join([*ops, b"ET"])


def flate(data: bytes) -> tuple[bytes, bytes]:
    return b"/Filter /FlateDecode ", zlib.compress(data)


def flate_repeated(
    prefix: bytes, unit: bytes, megabytes: int, suffix: bytes
) -> tuple[bytes, bytes]:
    """A FlateDecode stream expanding to `megabytes` MB without holding them in memory."""
    compressor = zlib.compressobj(9)
    block = unit * (2**20 // len(unit))
    parts = [compressor.compress(prefix)]
    parts += [compressor.compress(block) for _ in range(megabytes)]
    parts += [compressor.compress(suffix), compressor.flush()]
    return b"/Filter /FlateDecode ", b"".join(parts)


def with_pypdf(data: bytes, edit) -> bytes:
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(data))
    edit(writer)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes(build) -> bytes:
    document = docx.Document()
    build(document)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def rezip(
    data: bytes, extra: dict[str, bytes] | None = None, replace: dict[str, bytes] | None = None
) -> bytes:
    """Copy a zip, replacing or adding members (deflated)."""
    replace = replace or {}
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            body = replace.get(info.filename, source.read(info.filename))
            target.writestr(info.filename, body, compress_type=zipfile.ZIP_DEFLATED)
        for name, body in (extra or {}).items():
            target.writestr(name, body, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def paths(doc: ParsedDocument) -> list[tuple[str, ...]]:
    return [section.heading_path for section in doc.sections]


# --- detection -------------------------------------------------------------------------


def test_the_extension_decides_and_the_bytes_must_agree():
    assert detect_kind(b"# Notes", filename="notes.md", content_type="text/plain") == "markdown"
    assert (
        detect_kind(b"# Notes", filename="notes.md", content_type="application/octet-stream")
        == "markdown"
    )
    assert detect_kind(pdf_bytes([text_page("x")]), filename="Report.PDF") == "pdf"
    assert (
        detect_kind(b"<p>hi</p>", filename="page.php", content_type="text/html; charset=utf-8")
        == "html"
    )


def test_contents_that_contradict_the_type_are_refused():
    with pytest.raises(ParseError, match="do not match its type") as caught:
        detect_kind(b"<html><body>not a pdf</body></html>", filename="invoice.pdf")
    assert not isinstance(caught.value, UnsupportedType)
    with pytest.raises(ParseError, match="do not match its type"):
        detect_kind(pdf_bytes([text_page("x")]), filename="notes.txt")
    with pytest.raises(ParseError, match="do not match its type"):
        detect_kind(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", filename="notes.md")
    with pytest.raises(ParseError, match="do not match its type"):
        detect_kind(b"PK\x03\x04 not really a zip", filename="letter.docx")


def test_a_legacy_doc_renamed_to_docx_gets_a_specific_hint():
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512
    with pytest.raises(ParseError, match=r"\.doc file or a password-protected"):
        detect_kind(ole, filename="letter.docx")


def test_unsupported_types_name_the_supported_ones():
    with pytest.raises(UnsupportedType) as caught:
        detect_kind(b"MZ\x90\x00", filename="setup.exe", content_type="application/octet-stream")
    message = str(caught.value)
    for extension in (".pdf", ".docx", ".md", ".html", ".txt"):
        assert extension in message
    with pytest.raises(UnsupportedType):
        detect_kind(b"a,b\n1,2\n", filename="table.csv")


def test_files_without_extension_or_type_are_sniffed():
    assert detect_kind(pdf_bytes([text_page("x")]), filename="download") == "pdf"
    assert detect_kind(docx_bytes(lambda d: d.add_paragraph("x")), filename="blob") == "docx"
    assert detect_kind(b"<!DOCTYPE html><html><p>x</p></html>", filename="") == "html"
    assert detect_kind(b"Just some notes.\n", filename="README") == "text"
    with pytest.raises(UnsupportedType):
        detect_kind(b"\x00\x01\x02\x03", filename="README")


def test_empty_and_oversized_files_are_refused():
    with pytest.raises(ParseError, match="empty"):
        parse_document(b"", filename="empty.txt")
    with pytest.raises(ParseError, match="larger than"):
        parse_document(b"x" * 2000, filename="big.txt", limits=ParseLimits(max_input_bytes=1000))


def test_every_supported_extension_has_a_parser():
    assert set(SUPPORTED_EXTENSIONS.values()) == {"pdf", "docx", "markdown", "html", "text"}


@pytest.mark.parametrize(
    "filename",
    [
        "../../../../etc/passwd.txt",
        "/etc/shadow",
        "C:\\Windows\\..\\..\\boot.ini.txt",
        "~root/.ssh/id_rsa.md",
    ],
)
def test_filenames_are_only_labels_never_paths(filename, monkeypatch):
    def no_files(*args, **kwargs):
        raise AssertionError("the parser tried to open a file")

    monkeypatch.setattr(builtins, "open", no_files)
    monkeypatch.setattr(os, "open", no_files)
    doc = parse_document(b"The uploaded words.", filename=filename)
    assert doc.text == "The uploaded words."


# --- PDF -------------------------------------------------------------------------------


def test_pdf_text_is_extracted_per_page_with_metadata_title():
    data = pdf_bytes(
        [text_page("Quarterly report", "Revenue grew."), flate(text_page("Second page text"))],
        info={"Title": "Q3 Report", "Author": "Finance Team"},
    )
    doc = parse_document(data, filename="q3.pdf")
    assert doc.title == "Q3 Report"
    assert [(s.page, s.text) for s in doc.sections] == [
        (1, "Quarterly report\nRevenue grew."),
        (2, "Second page text"),
    ]
    assert doc.metadata == {"pages": 2, "author": "Finance Team"}


def test_pdf_title_falls_back_to_the_first_line_when_metadata_is_junk():
    data = pdf_bytes(
        [text_page("Travel policy", "Book early.")], info={"Title": "Microsoft Word - policy.docx"}
    )
    assert parse_document(data, filename="x.pdf").title == "Travel policy"


def test_pdf_words_hyphenated_across_lines_are_rejoined():
    doc = parse_document(
        pdf_bytes([text_page("The docu-", "ment continues here.")]), filename="a.pdf"
    )
    assert "document continues here." in doc.text


def test_pdf_outline_gives_heading_paths():
    data = pdf_bytes(
        [
            text_page("Welcome"),
            text_page("Install steps"),
            text_page("Linux steps"),
            text_page("more Linux"),
        ]
    )

    def outline(writer):
        writer.add_outline_item(title="Introduction", page_number=0)
        install = writer.add_outline_item(title="Install", page_number=1)
        writer.add_outline_item(title="On Linux", page_number=2, parent=install)

    doc = parse_document(with_pypdf(data, outline), filename="guide.pdf")
    assert [(s.page, s.heading_path) for s in doc.sections] == [
        (1, ("Introduction",)),
        (2, ("Install",)),
        (3, ("Install", "On Linux")),
        (4, ("Install", "On Linux")),
    ]


def test_a_pdf_without_a_text_layer_has_no_sections():
    drawing = b"0 0 m 100 100 l S 10 10 50 50 re f"
    doc = parse_document(pdf_bytes([drawing, drawing]), filename="scan.pdf")
    assert doc.sections == []
    assert doc.metadata["pages"] == 2


def test_a_password_protected_pdf_is_refused_plainly():
    data = with_pypdf(
        pdf_bytes([text_page("secret plans")]), lambda w: w.encrypt("hunter2", algorithm="AES-256")
    )
    with pytest.raises(ParseError, match="encrypted with a password"):
        parse_document(data, filename="locked.pdf")


def test_a_pdf_encrypted_with_an_empty_password_opens_like_any_viewer_would():
    data = with_pypdf(
        pdf_bytes([text_page("public text")]),
        lambda w: w.encrypt(user_password="", owner_password="owner", algorithm="AES-128"),
    )
    assert pypdf.PdfReader(io.BytesIO(data)).is_encrypted
    assert parse_document(data, filename="restricted.pdf").text == "public text"


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n" + os.urandom(4000),
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF",
    ],
    ids=["random-bytes", "dangling-references"],
)
def test_a_corrupt_pdf_is_a_parse_error(data):
    with pytest.raises(ParseError):
        parse_document(data, filename="broken.pdf")


def test_a_pdf_decompression_bomb_is_refused_in_bounded_memory_and_time():
    # 40 MB of text behind ~40 KB: over our 16 MB stream cap, under pypdf's own 75 MB one.
    bomb = flate_repeated(b"BT /F1 12 Tf (", b"A", 40, b") Tj ET")
    data = pdf_bytes([bomb])
    assert len(data) < 200_000
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(ParseError, match="decompression bomb"):
            parse_document(data, filename="bomb.pdf")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 10
    assert peak < 80 * 2**20


def test_a_page_with_oversized_content_is_skipped_not_parsed_for_minutes():
    # 3 MB of text operators: pypdf would need minutes (its extraction is superlinear).
    heavy = flate_repeated(b"BT /F1 12 Tf\n", b"(Hello world ) Tj\n", 3, b"ET")
    data = pdf_bytes([text_page("Normal page"), heavy, text_page("Last page")])
    started = time.monotonic()
    doc = parse_document(data, filename="heavy.pdf")
    assert time.monotonic() - started < 10
    assert [s.page for s in doc.sections] == [1, 3]
    assert doc.metadata["skipped_pages"] == [2]


def test_pdf_limits_on_pages_text_and_time():
    data = pdf_bytes([text_page("one " * 20), text_page("two " * 20), text_page("three")])
    with pytest.raises(ParseError, match="3 pages; the limit is 2"):
        parse_document(data, filename="a.pdf", limits=ParseLimits(max_pages=2))
    with pytest.raises(ParseError, match="more than 50 characters"):
        parse_document(data, filename="a.pdf", limits=ParseLimits(max_text_chars=50))
    with pytest.raises(ParseError, match="took too long"):
        parse_document(data, filename="a.pdf", limits=ParseLimits(max_seconds=-1))


# --- DOCX ------------------------------------------------------------------------------


def handbook(document):
    document.core_properties.title = "Staff handbook"
    document.core_properties.author = "HR"
    document.add_paragraph("Read this first.")
    document.add_heading("Install", level=1)
    document.add_paragraph("Get the installer.")
    document.add_heading("On Linux", level=2)
    document.add_paragraph("Use the package.")
    document.add_paragraph("Open a terminal", style="List Bullet")
    document.add_paragraph("Run apt", style="List Number")
    document.add_heading("Support", level=1)
    table = document.add_table(rows=3, cols=3)
    for row, values in zip(
        table.rows,
        [("Team", "Email", "Hours"), ("IT", "it@x", "9-5"), ("HR", "hr@x", "")],
        strict=True,
    ):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    merged = table.cell(2, 1).merge(table.cell(2, 2))
    merged.text = "hr@x"


def test_docx_headings_become_heading_paths_and_tables_rows():
    doc = parse_document(docx_bytes(handbook), filename="handbook.docx", content_type=DOCX_TYPE)
    assert doc.title == "Staff handbook"
    assert doc.metadata["author"] == "HR"
    assert [(s.heading_path, s.text) for s in doc.sections] == [
        ((), "Read this first."),
        (("Install",), "Get the installer."),
        (("Install", "On Linux"), "Use the package.\n\n- Open a terminal\n\n- Run apt"),
        (("Support",), "Team | Email | Hours\nIT | it@x | 9-5\nHR | hr@x"),
    ]


def test_docx_title_style_is_the_fallback_title():
    def build(document):
        document.add_heading("Onboarding guide", level=0)
        document.add_paragraph("Welcome aboard.")

    doc = parse_document(docx_bytes(build), filename="x.docx")
    assert doc.title == "Onboarding guide"
    assert doc.text == "Welcome aboard."


def test_a_docx_with_broken_xml_is_a_parse_error():
    data = rezip(docx_bytes(handbook), replace={"word/document.xml": b"<w:document><unclosed"})
    with pytest.raises(ParseError, match="could not be read"):
        parse_document(data, filename="broken.docx")


def test_a_docx_zip_bomb_is_refused_before_python_docx_opens_it(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("python-docx must not see a bomb")

    bomb = rezip(docx_bytes(handbook), extra={"word/media/image1.bin": b"\x00" * (30 * 2**20)})
    assert len(bomb) < 200_000
    monkeypatch.setattr(docx, "Document", refuse)
    with pytest.raises(ParseError, match="zip bomb"):
        parse_document(
            bomb, filename="bomb.docx", limits=ParseLimits(max_uncompressed_bytes=20 * 2**20)
        )
    # The default total cap is larger, but the ratio (~1000:1) still gives it away.
    with pytest.raises(ParseError, match="zip bomb"):
        parse_document(bomb, filename="bomb.docx")


def test_a_docx_whose_zip_directory_lies_about_sizes_is_not_inflated():
    # Declare 1 KB (with the matching CRC) for a part that really inflates to 50 MB. zipfile's
    # read() would inflate it all before truncating; the parser must not let that happen.
    content = b"<" + b" " * (50 * 2**20)
    honest = rezip(docx_bytes(handbook), replace={"word/document.xml": content})
    with zipfile.ZipFile(io.BytesIO(honest)) as archive:
        real = archive.getinfo("word/document.xml")
    fields = struct.pack("<III", real.CRC, real.compress_size, real.file_size)
    lie = struct.pack("<III", zlib.crc32(content[:1024]), real.compress_size, 1024)
    lying = honest.replace(fields, lie)
    assert honest.count(fields) == 2 and lying.count(lie) == 2  # local and central headers
    tracemalloc.start()
    try:
        with pytest.raises(ParseError, match="could not be read"):
            parse_document(lying, filename="liar.docx")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


def test_docx_images_do_not_count_against_text_but_their_declared_size_does():
    image = os.urandom(300_000)  # incompressible, so the ratio check stays quiet
    data = rezip(docx_bytes(handbook), extra={"word/media/photo.bin": image})
    assert parse_document(data, filename="photo.docx").title == "Staff handbook"
    with pytest.raises(ParseError, match="zip bomb"):
        parse_document(
            data, filename="photo.docx", limits=ParseLimits(max_uncompressed_bytes=200_000)
        )


# --- Markdown --------------------------------------------------------------------------

GUIDE_MD = """\
---
title: Deploy guide
tags: [ops]
---
Intro paragraph.

# Install

Download it.

On Linux
--------

Run this:

```bash
# this is a comment, not a heading

apt-get install thing
```

## Windows ##

Click setup.exe.

Configuration
=============

Edit the file.
"""


def test_markdown_splits_at_atx_and_setext_headings_and_keeps_code_intact():
    doc = parse_document(GUIDE_MD.encode(), filename="guide.md")
    assert doc.title == "Deploy guide"
    assert paths(doc) == [
        (),
        ("Install",),
        ("Install", "On Linux"),
        ("Install", "Windows"),
        ("Configuration",),
    ]
    linux = doc.sections[2].text
    assert (
        linux
        == "Run this:\n\n```bash\n# this is a comment, not a heading\n\napt-get install thing\n```"
    )
    assert doc.sections[0].text == "Intro paragraph."
    assert "title:" not in doc.text


def test_markdown_title_falls_back_to_first_h1_then_filename():
    assert parse_document(b"Text\n\n# Real title\n\nmore", filename="x.md").title == "Real title"
    assert parse_document(b"no headings", filename="docs/team-notes.md").title == "team-notes"


def test_markdown_rule_after_a_list_is_not_a_heading():
    doc = parse_document(b"- item one\n---\n\nafter", filename="x.md")
    assert paths(doc) == [()]
    assert "- item one" in doc.text


# --- HTML ------------------------------------------------------------------------------

HOSTILE_HTML = b"""<!DOCTYPE html>
<html><head><title>Expenses | Intranet</title>
<style>.x { color: red }</style><script>var leaked = "SCRIPT-TEXT";</script></head>
<body onload="BODY-HANDLER()">
<header><a href="/">Intranet home</a></header>
<nav><a href="/a">NAV-LINK</a></nav>
<div class="sidebar-left">SIDEBAR-TEXT</div>
<main>
  <article>
    <header><h1>Expenses</h1></header>
    <p onclick="CLICK-HANDLER()">Submit receipts <b>within</b> 30 days.<br>Late ones need approval.</p>
    <noscript>NOSCRIPT-TEXT</noscript>
    <template><p>TEMPLATE-TEXT</p></template>
    <form><label>FORM-LABEL</label><input value="FORM-VALUE"></form>
    <div hidden>HIDDEN-TEXT</div><div style="display: none">INVISIBLE-TEXT</div>
    <div aria-hidden="true">ARIA-HIDDEN-TEXT</div>
    <!-- COMMENT-TEXT -->
    <h2>Limits</h2>
    <ul><li>Meals: 30 EUR</li><li>Hotels: <em>150</em> EUR</li></ul>
    <table><tr><th>Grade</th><th>Limit</th></tr><tr><td>A</td><td>200</td></tr></table>
    <h3>Code</h3>
    <pre>expense submit --receipt r.pdf

expense status</pre>
    <aside>ASIDE-TEXT</aside>
  </article>
</main>
<footer>FOOTER-TEXT</footer>
</body></html>"""


def test_html_keeps_the_main_content_with_its_structure():
    doc = parse_document(HOSTILE_HTML, filename="expenses.html", content_type="text/html")
    assert doc.title == "Expenses"
    assert [(s.heading_path, s.text) for s in doc.sections] == [
        (("Expenses",), "Submit receipts within 30 days.\nLate ones need approval."),
        (("Expenses", "Limits"), "- Meals: 30 EUR\n\n- Hotels: 150 EUR\n\nGrade | Limit\nA | 200"),
        (
            ("Expenses", "Limits", "Code"),
            "```\nexpense submit --receipt r.pdf\n\nexpense status\n```",
        ),
    ]


def test_html_boilerplate_scripts_handlers_and_hidden_text_never_reach_passages():
    text = parse_document(HOSTILE_HTML, filename="expenses.html").text
    leaked = [word for word in text.split() if word.isupper() and "-" in word]
    assert leaked == []
    for needle in ("HANDLER", "Intranet home", "NAV-LINK", "leaked", "color"):
        assert needle not in text


def test_html_title_comes_from_title_or_first_h1():
    assert (
        parse_document(
            b"<title>Handbook</title><h1>Chapter 1</h1><p>x</p>", filename="a.html"
        ).title
        == "Handbook"
    )
    assert (
        parse_document(b"<h1>Only heading</h1><p>x</p>", filename="a.html").title == "Only heading"
    )


def test_html_charset_from_the_content_type_is_honoured():
    data = "<p>Caf\u00e9 \u201cquoted\u201d</p>".encode("cp1252")
    doc = parse_document(data, filename="a.html", content_type="text/html; charset=windows-1252")
    assert doc.text == "Caf\u00e9 \u201cquoted\u201d"


@pytest.mark.parametrize(
    ("page", "title", "expected_paths"),
    [
        (
            "shortcuts.html",
            "Django shortcut functions",
            [
                ("Django shortcut functions", "render()", "Required arguments"),
                ("Django shortcut functions", "get_list_or_404()", "Example"),
            ],
        ),
        (
            "tablespaces.html",
            "Tablespaces",
            [
                ("Tablespaces", "Declaring tablespaces for indexes"),
                ("Tablespaces", "Database support"),
            ],
        ),
        (
            "tutorial01.html",
            "Writing your first Django app, part 1",
            [("Writing your first Django app, part 1", "Creating a project")],
        ),
    ],
)
def test_real_django_documentation_pages(page, title, expected_paths):
    doc = parse_document((FIXTURES / "django-docs" / page).read_bytes(), filename=page)
    assert doc.title == title
    for path in expected_paths:
        assert path in paths(doc)
    text = doc.text
    # Sidebar, header/footer navigation, search form and inline scripts are gone.
    for boilerplate in (
        "Quick search",
        "Last update",
        "Table of contents",
        "previous",
        "jQuery",
        "django_template_builtins",
        "\u00b6",
        "3.2.25 documentation",
    ):
        assert boilerplate not in text, boilerplate
    assert all(not path or path[0] == title for path in paths(doc))


def test_django_code_examples_survive_as_fenced_blocks():
    doc = parse_document(
        (FIXTURES / "django-docs" / "shortcuts.html").read_bytes(), filename="s.html"
    )
    example = next(s for s in doc.sections if s.heading_path[1:] == ("render()", "Example"))
    assert "```\nfrom django.shortcuts import render\n\ndef my_view(request):" in example.text


# --- text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xef\xbb\xbfCaf\xc3\xa9", "Caf\u00e9"),
        ("Caf\u00e9".encode("utf-16"), "Caf\u00e9"),
        (b"Caf\xe9 \x93quoted\x94", "Caf\u00e9 \u201cquoted\u201d"),
        (b"line\r\nnext", "line\nnext"),
    ],
    ids=["utf8-bom", "utf16-bom", "cp1252", "crlf"],
)
def test_text_encodings(data, expected):
    assert parse_document(data, filename="a.txt").text == expected


def test_text_is_split_into_paragraphs():
    doc = parse_document(b"First para\nstill first.\n\n\n  \nSecond para.\n", filename="notes.txt")
    assert doc.title == "notes"
    assert doc.sections == [Section("First para\nstill first.\n\nSecond para.")]


def test_the_text_cap_applies_to_every_kind():
    with pytest.raises(ParseError, match="characters of text"):
        parse_document(b"word " * 100, filename="a.md", limits=ParseLimits(max_text_chars=100))


# --- HTML edge cases (lxml tree) -------------------------------------------------------


# Enough plain text that one control character stays under the 1% a text file may hold.
FILLER = b"filler" * 120
RUSSIAN = (
    "<html><body><p>В пятницу надежды на разрешение кризиса с транзитом "
    "газа в Европу через территорию Украины пока не оправдались. "
    "Их появлению способствовала информация о согласии сторон.</p></body></html>"
)
RUSSIAN_TEXT = RUSSIAN.removeprefix("<html><body><p>").removesuffix("</p></body></html>")


def html_sections(data: bytes, **kwargs) -> list[tuple[tuple[str, ...], str]]:
    doc = parse_document(data, filename="page.html", **kwargs)
    return [(s.heading_path, s.text) for s in doc.sections]


def test_html_text_around_removed_elements_and_comments_stays_apart_in_headings():
    data = (
        b"<h1>Tax<!-- x -->rules</h1><h2>Part<script>var a;</script>one</h2>"
        b"<p>in<span hidden>X</span>line</p>"
    )
    assert html_sections(data) == [(("Tax rules", "Part one"), "inline")]


def test_html_ruby_annotations_stay_out_of_headings_but_not_out_of_text():
    data = b"<h1>Kan<ruby>ji<rt>kan-ji</rt></ruby></h1><p>A<ruby>B<rp>(</rp><rt>b</rt></ruby></p>"
    assert html_sections(data) == [(("Kan ji",), "AB(b")]


def test_html_deep_nesting_is_read_up_to_the_walker_limit_and_refused_beyond():
    deep_inline = b"<p>" + b"<b>" * 300 + b"deep" + b"</b>" * 300 + b"</p><p>after</p>"
    assert html_sections(deep_inline) == [((), "deep\n\nafter")]
    for depth in (500, 5000):
        with pytest.raises(ParseError, match="nested too deeply"):
            parse_document(b"<div>" * depth + b"x" + b"</div>" * depth, filename="a.html")
    # Past libxml2's own limit the rest of the page would be lost silently: refused too,
    # even when the deep part is boilerplate that would have been dropped.
    hidden_deep = b"<nav>" + b"<div>" * 2100 + b"</div>" * 2100 + b"</nav><p>after</p>"
    with pytest.raises(ParseError, match="nested too deeply"):
        parse_document(hidden_deep, filename="a.html")


@pytest.mark.parametrize(
    "data",
    [b"<!-- only a comment -->", b"<?php echo 1; ?>", b"<html><head><title></title></head></html>"],
    ids=["comment", "processing-instruction", "head-only"],
)
def test_html_without_content_has_no_sections(data):
    doc = parse_document(data, filename="empty-page.html")
    assert (doc.title, doc.sections) == ("empty-page", [])


def test_html_page_without_body_keeps_its_title_and_frameset_text():
    doc = parse_document(
        b"<html><head><title>Frames</title></head><frameset><frame src=a></frameset></html>",
        filename="f.html",
    )
    assert (doc.title, doc.sections) == ("Frames", [])


def test_html_entities_comments_cdata_and_processing_instructions():
    data = b"<p>caf&eacute; &amp; &lt;tea&gt;&nbsp;<!-- c --><?pi x?><![CDATA[hidden]]>end</p>"
    assert html_sections(data) == [((), "caf\u00e9 & <tea> end")]


@pytest.mark.parametrize(
    ("data", "content_type", "expected"),
    [
        (b"<meta charset='iso-8859-1'><p>caf\xe9</p>", None, "caf\u00e9"),
        (b"<?xml version='1.0' encoding='iso-8859-15'?><p>\xa4</p>", None, "\u20ac"),
        (b"<meta charset='no-such-charset'><p>caf\xc3\xa9</p>", None, "caf\u00e9"),
        (b"\xef\xbb\xbf<p>caf\xc3\xa9</p>", None, "caf\u00e9"),
        ("<p>caf\u00e9</p>".encode("utf-16"), None, "caf\u00e9"),
        # Undeclared and not UTF-8: the encoding is detected.
        (RUSSIAN.encode("koi8-r"), None, RUSSIAN_TEXT),
        (RUSSIAN.encode("cp1251"), None, RUSSIAN_TEXT),
        # The HTTP charset wins over the page's own declaration.
        (b"<meta charset=utf-8><p>caf\xe9</p>", "text/html; charset=iso-8859-1", "caf\u00e9"),
    ],
    ids=[
        "meta",
        "xml-declaration",
        "unknown-declared",
        "utf8-bom",
        "utf16-bom",
        "undeclared-koi8-r",
        "undeclared-cp1251",
        "http-over-meta",
    ],
)
def test_html_encodings(data, content_type, expected):
    assert parse_document(data, filename="a.html", content_type=content_type).text == expected


def test_html_bytes_undefined_in_the_declared_encoding_do_not_cut_the_page():
    # 0x81 has no character in windows-1252: libxml2 would stop there and lose the page.
    data = b"<p>caf\xe9 \x81 end " + FILLER + b"</p><p>last paragraph</p>"
    text = parse_document(data, filename="a.html", content_type="text/html; charset=cp1252").text
    assert text.startswith("caf") and " end " in text and text.endswith("last paragraph")


def test_html_main_content_by_role_and_lone_article():
    assert html_sections(b"<div>SKIP</div><div role='main'><p>kept</p></div><p>SKIP</p>") == [
        ((), "kept")
    ]
    assert html_sections(b"<p>SKIP</p><article><p>kept</p></article>") == [((), "kept")]
    assert html_sections(b"<article><p>a</p></article><article><p>b</p></article>") == [
        ((), "a\n\nb")
    ]


def test_html_tables_flatten_nested_tables_into_their_cell():
    data = (
        b"<table><caption>cap</caption><tr><th>k</th><th>v</th></tr>"
        b"<tr><td>a<table><tr><td>in</td><td>ner</td></tr></table></td><td>b</td></tr>"
        b"<tr><td> </td></tr></table>"
    )
    assert html_sections(data) == [((), "k | v\na in ner | b")]
