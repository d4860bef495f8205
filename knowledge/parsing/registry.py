"""The parser registry, kind detection, and the one entry point callers use: `parse_document`."""

from __future__ import annotations

import logging
import time
from pathlib import PurePosixPath

from .base import ParsedDocument, ParseError, ParseLimits, Parser, UnsupportedType

logger = logging.getLogger(__name__)

PARSERS: dict[str, Parser] = {}
# Filled by `register`; maps ".pdf" -> "pdf", ".md" -> "markdown", ...
SUPPORTED_EXTENSIONS: dict[str, str] = {}
CONTENT_TYPES: dict[str, str] = {}
# Types that say nothing about the content: the extension (or the bytes) decide instead.
GENERIC_CONTENT_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .doc/.xls, and password-protected .docx


def register(parser_class: type[Parser]) -> type[Parser]:
    """Class decorator: make a parser available under its `kind`, extensions and content types."""
    parser = parser_class()
    PARSERS[parser.kind] = parser
    for extension in parser.extensions:
        SUPPORTED_EXTENSIONS[extension] = parser.kind
    for content_type in parser.content_types:
        CONTENT_TYPES[content_type] = parser.kind
    return parser_class


def get_parser(kind: str) -> Parser:
    try:
        return PARSERS[kind]
    except KeyError:
        raise UnsupportedType(_unsupported_message()) from None


def media_type(content_type: str | None) -> str:
    """'text/html; charset=utf-8' -> 'text/html'."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def detect_kind(
    data: bytes,
    *,
    filename: str,
    content_type: str | None = None,
    limits: ParseLimits = ParseLimits(),  # noqa: B008 - frozen dataclass, safe as a default
) -> str:
    """Decide the kind from the extension (first) or the claimed type, then check the bytes.

    A file with neither a known extension nor a meaningful type is sniffed only when it has no
    extension at all ("README"); "setup.exe" stays unsupported whatever its bytes.
    Raises `ParseError` when the bytes contradict the claimed kind or are too costly to open
    (each parser's cheap `precheck` runs before any library sees them), `UnsupportedType`
    otherwise.
    """
    if not data:
        raise ParseError("The file is empty.")
    extension = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    claimed = media_type(content_type)
    kind = SUPPORTED_EXTENSIONS.get(extension) or CONTENT_TYPES.get(claimed)
    if kind is None:
        if extension or claimed not in GENERIC_CONTENT_TYPES:
            raise UnsupportedType(_unsupported_message())
        return _sniff(data, limits)
    parser = PARSERS[kind]
    parser.precheck(data, limits)
    if not parser.matches(data):
        raise ParseError(_mismatch_message(parser, data))
    return kind


def parse_document(
    data: bytes,
    *,
    filename: str,
    content_type: str | None = None,
    limits: ParseLimits = ParseLimits(),  # noqa: B008 - frozen dataclass, safe as a default
) -> ParsedDocument:
    """Parse an uploaded or fetched document into sections.

    `filename` is only used for its extension and as a fallback title; the parser never
    touches the filesystem. Raises `ParseError` (or `UnsupportedType`) with a message for people.
    """
    if len(data) > limits.max_input_bytes:
        raise ParseError(
            f"The file is larger than the {limits.max_input_bytes // 2**20} MB this system accepts."
        )
    kind = detect_kind(data, filename=filename, content_type=content_type, limits=limits)
    parser = PARSERS[kind]
    started = time.monotonic()
    try:
        document = parser.parse(data, filename=filename, content_type=content_type, limits=limits)
    except ParseError:
        raise
    except Exception as exc:  # a library choked on a malformed file: say so, keep the cause
        logger.warning("parser %s failed on %r", kind, filename, exc_info=True)
        raise ParseError(
            f"This {parser.label} could not be read; it may be damaged or use features "
            "that are not supported."
        ) from exc
    check_text_size(len(document.text), limits)
    logger.debug("parsed %r as %s in %.2fs", filename, kind, time.monotonic() - started)
    return document


def check_text_size(chars: int, limits: ParseLimits) -> None:
    if chars > limits.max_text_chars:
        raise ParseError(
            f"The document holds more than {limits.max_text_chars:,} characters of text, more "
            "than this system accepts. Split it into smaller files."
        )


def _sniff(data: bytes, limits: ParseLimits) -> str:
    """Guess the kind of a file that has no extension and no useful content type."""
    for kind in ("pdf", "docx", "text"):
        if kind not in PARSERS:
            continue
        PARSERS[kind].precheck(data, limits)
        if PARSERS[kind].matches(data):
            if kind == "text" and data[:512].lstrip().lower().startswith(
                (b"<!doctype html", b"<html")
            ):
                return "html"
            return kind
    raise UnsupportedType(_unsupported_message())


def _mismatch_message(parser: Parser, data: bytes) -> str:
    message = f"The file's contents do not match its type: it is not a valid {parser.label}."
    if parser.kind == "docx" and data.startswith(OLE_MAGIC):
        message += (
            " It looks like an old-style .doc file or a password-protected document; "
            "save it as .docx without a password and upload it again."
        )
    return message


def _unsupported_message() -> str:
    kinds = ", ".join(
        f"{parser.label} ({', '.join(parser.extensions)})" for parser in PARSERS.values()
    )
    return f"This file type is not supported. Supported types: {kinds}."
