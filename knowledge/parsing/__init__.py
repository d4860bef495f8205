"""Pure document parsing: bytes in, `ParsedDocument` out. No Django, no filesystem, no network.

Importing this package registers every parser; `parse_document` is the entry point.
"""

from . import docx, html, markdown, pdf, text  # noqa: F401 - importing registers the parsers
from .base import (
    ParsedDocument,
    ParseError,
    ParseLimits,
    Parser,
    Section,
    UnsupportedType,
)
from .registry import (
    PARSERS,
    SUPPORTED_EXTENSIONS,
    detect_kind,
    get_parser,
    parse_document,
    register,
)

__all__ = [
    "PARSERS",
    "SUPPORTED_EXTENSIONS",
    "ParseError",
    "ParseLimits",
    "ParsedDocument",
    "Parser",
    "Section",
    "UnsupportedType",
    "detect_kind",
    "get_parser",
    "parse_document",
    "register",
]
