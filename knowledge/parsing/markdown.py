"""Markdown: sections split at ATX (`## x`) and setext (`x` over `---`) headings.

Fenced code blocks are copied verbatim (a `#` inside a fence is not a heading), and the
body keeps its Markdown so passages render as the author wrote them.
"""

from __future__ import annotations

import re

from .base import ParsedDocument, ParseLimits, Parser, SectionBuilder, decode_text, filename_stem
from .registry import register
from .text import is_text

ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# A paragraph that starts like this cannot become a setext heading (the `---` is a rule).
NOT_SETEXT = re.compile(r"^ {0,3}([-*+>]|\d{1,9}[.)])(\s|$)")
FRONT_MATTER_TITLE = re.compile(r"^title:\s*['\"]?(.*?)['\"]?\s*$", re.IGNORECASE)


@register
class MarkdownParser(Parser):
    kind = "markdown"
    label = "Markdown"
    extensions = (".md", ".markdown")
    content_types = ("text/markdown", "text/x-markdown")

    def matches(self, data: bytes) -> bool:
        return is_text(data)

    def parse(
        self, data: bytes, *, filename: str, content_type: str | None, limits: ParseLimits
    ) -> ParsedDocument:
        lines = decode_text(data).split("\n")
        front_title, lines = _split_front_matter(lines)
        builder, first_h1 = _MarkdownWalker().walk(lines)
        title = front_title or first_h1 or filename_stem(filename) or "Untitled"
        return ParsedDocument(title=title, sections=builder.build(), metadata={})


class _MarkdownWalker:
    """A line scanner that tracks fences and the current paragraph (for setext headings)."""

    def __init__(self) -> None:
        self.builder = SectionBuilder()
        self.body: list[str] = []  # lines under the current heading
        self.paragraph_start: int | None = None  # index in body where the paragraph begins
        self.fence: str | None = None
        self.first_h1 = ""

    def walk(self, lines: list[str]) -> tuple[SectionBuilder, str]:
        for line in lines:
            self._line(line)
        self._close_body()
        return self.builder, self.first_h1

    def _line(self, line: str) -> None:
        if self.fence is not None:
            self.body.append(line)
            if re.match(rf"^ {{0,3}}{self.fence[0]}{{{len(self.fence)},}}[ \t]*$", line):
                self.fence = None
            return
        if fence := FENCE.match(line):
            self.fence = fence.group(1)
            self._end_paragraph()
            self.body.append(line)
        elif atx := ATX.match(line):
            self._heading(len(atx.group(1)), atx.group(2) or "")
        elif SETEXT.match(line) and self._setext_candidate():
            start = self.paragraph_start or 0
            text = " ".join(part.strip() for part in self.body[start:])
            del self.body[start:]
            self._heading(1 if line.strip()[0] == "=" else 2, text)
        elif not line.strip():
            self._end_paragraph()
            self.body.append(line)
        else:
            if self.paragraph_start is None:
                self.paragraph_start = len(self.body)
            self.body.append(line)

    def _setext_candidate(self) -> bool:
        if self.paragraph_start is None:
            return False
        return not NOT_SETEXT.match(self.body[self.paragraph_start])

    def _heading(self, level: int, text: str) -> None:
        self._close_body()
        if level == 1 and not self.first_h1:
            self.first_h1 = " ".join(text.split())
        self.builder.heading(level, text)

    def _end_paragraph(self) -> None:
        self.paragraph_start = None

    def _close_body(self) -> None:
        self.builder.add("\n".join(self.body))
        self.body = []
        self.paragraph_start = None


def _split_front_matter(lines: list[str]) -> tuple[str, list[str]]:
    """Strip a leading YAML front-matter block; return its `title:` if it has one."""
    if not lines or lines[0].strip() != "---":
        return "", lines
    for index, line in enumerate(lines[1:60], start=1):
        if line.strip() in ("---", "..."):
            titles = [m.group(1) for m in map(FRONT_MATTER_TITLE.match, lines[1:index]) if m]
            return (titles[0].strip() if titles else ""), lines[index + 1 :]
    return "", lines
