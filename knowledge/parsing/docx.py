"""Word (.docx) through python-docx: heading styles give the heading path.

A .docx is a zip, so before any zip library opens it the archive's directory is read by hand
(``zipdir``: entry count, directory size and declared sizes, also in the upload request through
``precheck``); once opened, compression ratios are checked, and then python-docx gets a copy
rebuilt by reading each XML
part in small bounded steps. The copy matters: the declarations can lie, and zipfile's
`read()` (what python-docx calls) inflates a member's whole compressed data in one go
before truncating it to the declared size. Binary parts (images, fonts) are emptied in the
copy: they carry no text and are the bulk of a document's bytes.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

import docx
from docx.document import Document
from docx.table import Table
from docx.text.paragraph import Paragraph

from .base import ParsedDocument, ParseError, ParseLimits, Parser, SectionBuilder, filename_stem
from .registry import register
from .zipdir import ZipDamaged, read_directory, too_big_message

HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)
# Small members (styles, settings) legitimately compress very well; only big ones can bomb.
RATIO_CHECK_MIN_BYTES = 2**20
READ_CHUNK = 64 * 1024


@register
class DocxParser(Parser):
    kind = "docx"
    label = "Word document"
    extensions = (".docx",)
    content_types = ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",)

    def precheck(self, data: bytes, limits: ParseLimits) -> None:
        if not data.startswith(b"PK"):
            return  # not a zip at all: `matches` says so
        try:
            read_directory(data, limits, self.label)
        except ZipDamaged:
            return  # `matches` refuses it as "not a valid Word document"

    def matches(self, data: bytes) -> bool:
        if not data.startswith(b"PK"):
            return False
        try:
            read_directory(data, ParseLimits(), self.label)  # before zipfile reads the directory
        except ParseError:
            return False
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                return "word/document.xml" in archive.namelist()
        except (zipfile.BadZipFile, ValueError, OSError):
            return False

    def parse(
        self, data: bytes, *, filename: str, content_type: str | None, limits: ParseLimits
    ) -> ParsedDocument:
        safe = safe_copy(data, limits)
        try:
            document = docx.Document(io.BytesIO(safe))
        except (zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise ParseError(
                "This Word document could not be read; it seems to be damaged."
            ) from exc
        builder = SectionBuilder()
        styled_title = _walk(document, builder)
        core = document.core_properties
        title = (core.title or "").strip() or styled_title or filename_stem(filename) or "Untitled"
        return ParsedDocument(title=title, sections=builder.build(), metadata=_metadata(core))


def safe_copy(data: bytes, limits: ParseLimits) -> bytes:
    """Check the archive's declarations, then rebuild it from bounded reads of its XML parts."""
    try:
        read_directory(data, limits, DocxParser.label)
    except ZipDamaged as exc:
        raise ParseError("This Word document could not be read; it seems to be damaged.") from exc
    out = io.BytesIO()
    try:
        with (
            zipfile.ZipFile(io.BytesIO(data)) as archive,
            zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as copy,
        ):
            members = archive.infolist()
            check_declarations(members, limits)
            budget = limits.max_uncompressed_bytes
            for member in members:
                if member.is_dir():
                    continue
                body = b""
                if member.filename.endswith((".xml", ".rels")):
                    body = _read_bounded(archive, member, budget)
                    budget -= len(body)
                copy.writestr(member.filename, body)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as exc:
        raise ParseError("This Word document could not be read; it seems to be damaged.") from exc
    return out.getvalue()


def _read_bounded(archive: zipfile.ZipFile, member: zipfile.ZipInfo, budget: int) -> bytes:
    # zipfile stops at the declared size; small reads keep each inflate step small too.
    body = bytearray()
    with archive.open(member) as stream:
        while chunk := stream.read(READ_CHUNK):
            body += chunk
            if len(body) > budget:
                raise ParseError(_too_big_message(budget))
    return bytes(body)


def check_declarations(members: list[zipfile.ZipInfo], limits: ParseLimits) -> None:
    """Refuse archives whose declared contents are too many, too big, or too compressed."""
    if len(members) > limits.max_zip_entries:
        raise ParseError("This Word document contains too many parts to be read safely.")
    if sum(member.file_size for member in members) > limits.max_uncompressed_bytes:
        raise ParseError(_too_big_message(limits.max_uncompressed_bytes))
    for member in members:
        if member.flag_bits & 0x1:
            raise ParseError("This Word document is encrypted, so its text cannot be read.")
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > RATIO_CHECK_MIN_BYTES and ratio > limits.max_compression_ratio:
            raise ParseError(
                "This Word document contains a part that is compressed suspiciously well "
                "(it may be a zip bomb), so it was not opened."
            )


def _too_big_message(limit: int) -> str:
    return too_big_message(DocxParser.label, limit)


def _walk(document: Document, builder: SectionBuilder) -> str:
    """Feed paragraphs and tables to the builder in order; return the Title-styled text."""
    title = ""
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            builder.add(table_text(block))
            continue
        text = block.text.strip()
        style = _style_name(block)
        if style == "title":
            title = title or " ".join(text.split())
        elif match := HEADING_STYLE.match(style):
            builder.heading(int(match.group(1)), text)
        elif text:
            builder.add(f"- {text}" if _is_list_item(block, style) else text)
    return title


def _style_name(paragraph: Paragraph) -> str:
    try:
        return (paragraph.style.name or "").strip().lower() if paragraph.style else ""
    except (KeyError, ValueError):  # a style id the styles part does not define
        return ""


def _is_list_item(paragraph: Paragraph, style: str) -> bool:
    properties = paragraph._p.pPr  # python-docx exposes numbering only on the XML element
    return style.startswith("list") or (properties is not None and properties.numPr is not None)


def table_text(table: Table) -> str:
    """One line per row, 'cell | cell'; a merged cell is written once, not per grid column."""
    rows = []
    for row in table.rows:
        cells = [" ".join(cell.text.split()) for cell in _unique_cells(row.cells)]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _unique_cells(cells: list[Any]) -> Iterator[Any]:
    previous = None
    for cell in cells:
        if previous is None or cell._tc is not previous._tc:
            yield cell
        previous = cell


def _metadata(core: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if core.author:
        metadata["author"] = core.author
    if core.created:
        metadata["created"] = core.created.isoformat()
    return metadata
