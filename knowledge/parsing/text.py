"""Plain text: paragraphs separated by blank lines, in one untitled section."""

from __future__ import annotations

import re

from .base import (
    ParsedDocument,
    ParseError,
    ParseLimits,
    Parser,
    Section,
    decode_text,
    filename_stem,
)
from .registry import OLE_MAGIC, register

BINARY_MAGIC = (b"%PDF-", b"PK\x03\x04", OLE_MAGIC)
SNIFF_BYTES = 64 * 1024


def is_text(data: bytes) -> bool:
    """Whether the bytes decode as text and are not a PDF, zip or Office container."""
    if data[:1024].lstrip().startswith(BINARY_MAGIC):
        return False
    try:
        decode_text(data[:SNIFF_BYTES])
    except ParseError:
        return False
    return True


def paragraphs(text: str) -> list[str]:
    """Blocks separated by blank lines, trailing spaces trimmed, empty ones dropped."""
    blocks = re.split(r"\n[ \t]*\n", text)
    return [block.strip("\n").rstrip() for block in blocks if block.strip()]


@register
class TextParser(Parser):
    kind = "text"
    label = "plain text"
    extensions = (".txt", ".text")
    content_types = ("text/plain",)

    def matches(self, data: bytes) -> bool:
        return is_text(data)

    def parse(
        self, data: bytes, *, filename: str, content_type: str | None, limits: ParseLimits
    ) -> ParsedDocument:
        text = decode_text(data)
        blocks = paragraphs(text)
        sections = [Section("\n\n".join(blocks))] if blocks else []
        title = filename_stem(filename) or (blocks[0].splitlines()[0][:120] if blocks else "")
        return ParsedDocument(title=title or "Untitled", sections=sections, metadata={})
