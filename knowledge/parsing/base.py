"""The shapes every parser returns, the errors it may raise, and the limits it must respect.

Parsers are pure: bytes in, dataclasses out. Nothing here touches Django, the
filesystem or the network, so a hostile upload can only cost CPU and memory, and
`ParseLimits` bounds both.
"""

from __future__ import annotations

import codecs
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import ClassVar

MAX_HEADING_CHARS = 200
# Unicode category Cc (U+0000-U+001F, U+007F-U+009F) without the whitespace controls \t\n\v\f\r.
CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")
CODE_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


@dataclass(frozen=True)
class Section:
    """A structural block of text: the body under one heading (or one PDF page)."""

    text: str
    heading_path: tuple[str, ...] = ()
    page: int | None = None


@dataclass
class ParsedDocument:
    """What a parser extracted: a title, the sections in reading order, and metadata.

    `metadata` holds only JSON-safe values (str, int, list) so it can be stored as is.
    A document without sections means no text was found (e.g. a scanned PDF).
    """

    title: str
    sections: list[Section]
    metadata: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The full extracted text, sections separated by blank lines."""
        return "\n\n".join(section.text for section in self.sections)


class ParseError(Exception):
    """A document could not be read. The message is shown to a person as is."""


class UnsupportedType(ParseError):
    """The file is of a kind we do not parse. The message lists the supported kinds."""


@dataclass(frozen=True)
class ParseLimits:
    """Upper bounds that keep a hostile or pathological file from exhausting a worker.

    Defaults are generous for real documents (a 500-page book is about 6M characters).
    """

    max_input_bytes: int = 50 * 2**20
    # A parsed HTML tree costs several times the markup, so HTML gets a lower cap.
    max_html_bytes: int = 10 * 2**20
    max_pages: int = 2_000
    # Any single decompressed PDF stream (pypdf's own limit is 75 MB).
    max_stream_bytes: int = 16 * 2**20
    # pypdf's text extraction is superlinear in content size (1 MB: ~3 s, 8 MB: ~4 min),
    # so pages whose content is bigger than this are skipped (they are drawings, not prose).
    max_page_content_bytes: int = 2**20
    # DOCX (zip) members: total declared size, count, and per-member compression ratio. A
    # DOCX has dozens to a few thousand parts; the directory's size bounds its records however
    # many the end record admits to (each is 46 bytes plus a name, extras and a comment).
    max_uncompressed_bytes: int = 200 * 2**20
    max_zip_entries: int = 5_000
    max_zip_directory_bytes: int = 4 * 2**20
    max_compression_ratio: int = 200
    max_text_chars: int = 10_000_000
    # Wall-clock budget for one document, checked between pages.
    max_seconds: float = 120.0


class Parser(ABC):
    """One document kind. Subclass, set the class attributes, and decorate with `register`."""

    kind: ClassVar[str]  # the registry key, e.g. "pdf"
    label: ClassVar[str]  # what people call it, e.g. "PDF"
    extensions: ClassVar[tuple[str, ...]]  # e.g. (".pdf",)
    content_types: ClassVar[tuple[str, ...]]  # e.g. ("application/pdf",)

    @abstractmethod
    def matches(self, data: bytes) -> bool:
        """Whether the bytes really are this kind (magic numbers, container layout...)."""

    def precheck(self, data: bytes, limits: ParseLimits) -> None:
        """Refuse bytes too costly to open, before ``matches`` or ``parse`` hand them to a library.

        Runs in the upload request, so it must be cheap whatever the bytes declare. Raise
        `ParseError` with a plain-words message; malformed bytes are left to ``matches``.
        Most kinds have nothing to check before their library opens them.
        """
        return None

    @abstractmethod
    def parse(
        self, data: bytes, *, filename: str, content_type: str | None, limits: ParseLimits
    ) -> ParsedDocument:
        """Extract the document. Raise `ParseError` with a plain-words message on failure."""


class SectionBuilder:
    """Collects text blocks under a stack of headings and emits one `Section` per heading body."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []
        self._blocks: list[str] = []
        self._sections: list[Section] = []

    @property
    def heading_path(self) -> tuple[str, ...]:
        return tuple(text for _, text in self._stack)

    def heading(self, level: int, text: str) -> None:
        """Open a heading: it closes the current body and replaces same-or-deeper headings."""
        self._flush()
        text = clean_heading(text)
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        if text:
            self._stack.append((level, text))

    def add(self, text: str) -> None:
        text = text.strip("\n")
        if text.strip():
            self._blocks.append(text)

    def build(self) -> list[Section]:
        self._flush()
        return self._sections

    def _flush(self) -> None:
        if self._blocks:
            self._sections.append(Section("\n\n".join(self._blocks), self.heading_path))
            self._blocks = []


def clean_heading(text: str) -> str:
    """Collapse whitespace, drop permalink markers, and keep headings to a sane length."""
    text = " ".join(text.replace("\u00b6", " ").split())
    return text[:MAX_HEADING_CHARS]


def filename_stem(filename: str) -> str:
    """The name without folders or extension; only ever used as a display title."""
    name = PurePosixPath(filename.replace("\\", "/")).name
    return PurePosixPath(name).stem.strip() or name.strip()


def fenced(code: str, info: str = "") -> str:
    """Wrap code in a Markdown fence longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{code.strip(chr(10))}\n{fence}"


def split_blocks(text: str) -> list[str]:
    """Paragraphs separated by blank lines; a fenced code block is always one block."""
    blocks: list[str] = []
    current: list[str] = []
    fence: str | None = None

    def flush() -> None:
        if current:
            blocks.append("\n".join(current).strip("\n"))
            current.clear()

    for line in text.split("\n"):
        if fence is not None:
            current.append(line)
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
                flush()
        elif opening := CODE_FENCE.match(line):
            flush()
            fence = opening.group(1)
            current.append(line)
        elif not line.strip():
            flush()
        else:
            current.append(line)
    flush()
    return [block for block in blocks if block.strip()]


def decode_text(data: bytes) -> str:
    """Decode text bytes: honour a BOM, try UTF-8, fall back to cp1252, then latin-1.

    Raises `ParseError` when the result does not look like text (NUL or many control bytes).
    """
    if data.startswith(codecs.BOM_UTF8):
        text = data[len(codecs.BOM_UTF8) :].decode("utf-8", errors="replace")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16", errors="replace")
    else:
        text = _decode_without_bom(data)
    if not looks_like_text(text):
        raise ParseError("The file's contents do not match its type: it is not readable text.")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode_without_bom(data: bytes) -> str:
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")  # never fails: every byte is a character


def looks_like_text(text: str) -> bool:
    """No NUL and under 1% control characters (binary files decoded as latin-1 fail this)."""
    if "\x00" in text:
        return False
    sample = text[:100_000]
    controls = len(CONTROL_CHARACTERS.findall(sample))
    return controls <= len(sample) / 100
