"""PDF through pypdf's text layer: one section per page, headings from the outline.

Bombs are bounded three ways: pypdf's own decompression limits (set per call from
`ParseLimits.max_stream_bytes`), a cap on the content parsed per page (pypdf's extraction
is superlinear in content size), and running caps on text and wall-clock time.
"""

from __future__ import annotations

import io
import logging
import re
import time
from typing import Any

import pypdf
from pypdf.errors import LimitReachedError, PdfReadError
from pypdf.generic import DictionaryObject, IndirectObject, StreamObject

from .base import ParsedDocument, ParseError, ParseLimits, Parser, Section, filename_stem
from .registry import check_text_size, register

logger = logging.getLogger(__name__)

MAX_FORM_DEPTH = 8
# Producers put file names or tool banners in /Title; those make poor titles.
JUNK_TITLE = re.compile(
    r"^(untitled|microsoft (word|powerpoint) - .*|.*\.(docx?|pdf|pptx?))$", re.I
)


@register
class PdfParser(Parser):
    kind = "pdf"
    label = "PDF"
    extensions = (".pdf",)
    content_types = ("application/pdf", "application/x-pdf")

    def matches(self, data: bytes) -> bool:
        return b"%PDF-" in data[:1024]  # the spec allows junk before the header

    def parse(
        self, data: bytes, *, filename: str, content_type: str | None, limits: ParseLimits
    ) -> ParsedDocument:
        try:
            with pypdf.apply_configuration(**_pypdf_limits(limits)):
                return _parse(data, filename=filename, limits=limits)
        except LimitReachedError as exc:
            raise ParseError(
                "This PDF contains data that expands to more than this system accepts "
                "(it may be a decompression bomb)."
            ) from exc
        except PdfReadError as exc:
            raise ParseError("This PDF could not be read; it seems to be damaged.") from exc


def _pypdf_limits(limits: ParseLimits) -> dict[str, int]:
    cap = limits.max_stream_bytes
    return {
        "zlib_maximum_output_length": cap,
        "lzw_maximum_output_length": cap,
        "run_length_maximum_output_length": cap,
        "brotli_maximum_output_length": cap,
        "array_based_stream_maximum_output_length": cap,
        "jbig2_maximum_output_length": cap,
        "image_maximum_buffer_size": cap,
        "maximum_declared_stream_length": max(cap, limits.max_input_bytes),
    }


def _parse(data: bytes, *, filename: str, limits: ParseLimits) -> ParsedDocument:
    reader = pypdf.PdfReader(io.BytesIO(data))
    _unlock(reader)
    page_count = len(reader.pages)
    if page_count > limits.max_pages:
        raise ParseError(
            f"This PDF has {page_count:,} pages; the limit is {limits.max_pages:,}. "
            "Split it into smaller files."
        )
    paths = _outline_paths(reader, page_count)
    sections, skipped = _extract_pages(reader, paths, limits)
    metadata: dict[str, Any] = {"pages": page_count}
    if skipped:
        metadata["skipped_pages"] = skipped
    info = _info(reader)
    if info.get("author"):
        metadata["author"] = info["author"]
    title = _title(info.get("title", ""), sections) or filename_stem(filename) or "Untitled"
    return ParsedDocument(title=title, sections=sections, metadata=metadata)


def _unlock(reader: pypdf.PdfReader) -> None:
    """Open PDFs with an empty user password (readable by anyone); refuse real passwords."""
    if not reader.is_encrypted:
        return
    try:
        unlocked = reader.decrypt("") != pypdf.PasswordType.NOT_DECRYPTED
    except Exception:  # unsupported cipher or missing crypto backend: same answer for people
        unlocked = False
    if not unlocked:
        raise ParseError(
            "This PDF is encrypted with a password, so its text cannot be read. "
            "Upload a copy without a password."
        )


def _extract_pages(
    reader: pypdf.PdfReader, paths: list[tuple[str, ...]], limits: ParseLimits
) -> tuple[list[Section], list[int]]:
    deadline = time.monotonic() + limits.max_seconds
    sections: list[Section] = []
    skipped: list[int] = []
    chars = 0
    for index, page in enumerate(reader.pages):
        if time.monotonic() > deadline:
            raise ParseError("Reading this PDF took too long; it may be damaged or too complex.")
        if _content_size(page, limits.max_page_content_bytes) > limits.max_page_content_bytes:
            skipped.append(index + 1)  # a drawing or a bomb: either way no prose to lose
            continue
        text = _clean(page.extract_text() or "")
        chars += len(text)
        check_text_size(chars, limits)
        if text:
            sections.append(Section(text, paths[index], index + 1))
    return sections, skipped


def _content_size(page: pypdf.PageObject, cap: int) -> int:
    """Decoded bytes of the page's content plus its form XObjects (where text can hide)."""
    contents = page.get_contents()
    total = len(contents.get_data()) if contents is not None else 0
    seen: set[int] = set()
    stack = [(page.get("/Resources"), 0)]
    while stack:
        resources, depth = stack.pop()
        for form in _forms(resources, seen):
            total += len(form.get_data())
            if total > cap:  # stop decoding: the answer is already "too big"
                return total
            if depth < MAX_FORM_DEPTH:
                stack.append((form.get("/Resources"), depth + 1))
    return total


def _forms(resources: Any, seen: set[int]) -> list[StreamObject]:
    resources = resources.get_object() if resources is not None else None
    if not isinstance(resources, DictionaryObject):
        return []
    xobjects = resources.get("/XObject")
    xobjects = xobjects.get_object() if xobjects is not None else None
    if not isinstance(xobjects, DictionaryObject):
        return []
    forms = []
    for reference in xobjects.values():
        obj = reference.get_object()
        key = reference.idnum if isinstance(reference, IndirectObject) else id(obj)
        if isinstance(obj, StreamObject) and obj.get("/Subtype") == "/Form" and key not in seen:
            seen.add(key)
            forms.append(obj)
    return forms


def _clean(text: str) -> str:
    text = text.replace("\x00", "")
    text = re.sub(r"(?<=[a-z])-\n(?=[a-z])", "", text)  # re-join words hyphenated at line ends
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _info(reader: pypdf.PdfReader) -> dict[str, str]:
    try:
        meta = reader.metadata
    except Exception:  # a broken /Info dictionary should not cost us the text
        logger.debug("unreadable PDF metadata", exc_info=True)
        return {}
    if meta is None:
        return {}
    return {"title": str(meta.title or "").strip(), "author": str(meta.author or "").strip()}


def _title(meta_title: str, sections: list[Section]) -> str:
    if meta_title and not JUNK_TITLE.match(meta_title):
        return meta_title[:300]
    for section in sections:
        for line in section.text.splitlines():
            if line.strip():
                return line.strip()[:150]
    return ""


def _outline_paths(reader: pypdf.PdfReader, page_count: int) -> list[tuple[str, ...]]:
    """The heading path in force on each page, from the PDF's bookmarks (if any)."""
    # A page is labelled with the first heading that starts on it; the last one carries over.
    first: dict[int, tuple[str, ...]] = {}
    last: dict[int, tuple[str, ...]] = {}
    try:
        for page_index, path in _walk_outline(reader, reader.outline, ()):
            if 0 <= page_index < page_count:
                first.setdefault(page_index, path)
                last[page_index] = path
    except Exception:  # bookmarks are a bonus; a broken outline must not block the text
        logger.debug("unreadable PDF outline", exc_info=True)
        first, last = {}, {}
    paths: list[tuple[str, ...]] = []
    carried: tuple[str, ...] = ()
    for index in range(page_count):
        paths.append(first.get(index, carried))
        carried = last.get(index, carried)
    return paths


def _walk_outline(reader: pypdf.PdfReader, items: list, parent: tuple[str, ...]):
    """Yield (page index, heading path); a nested list holds the children of the item before it."""
    path = parent
    for item in items:
        if isinstance(item, list):
            yield from _walk_outline(reader, item, path)
            continue
        title = " ".join(str(item.title or "").split())[:200]
        path = (*parent, title) if title else parent
        page_index = reader.get_destination_page_number(item)
        if page_index is not None:
            yield page_index, path
