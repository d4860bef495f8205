"""HTML: the page's main content, with h1-h6 as the heading path.

Boilerplate (navigation, page header/footer, sidebars, scripts, forms, hidden elements) is
removed before walking the tree. Only text nodes are read, never attributes, so event
handlers, inline styles and URLs cannot leak into passages.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import PreformattedString

from .base import ParsedDocument, ParseError, ParseLimits, Parser, SectionBuilder, fenced
from .base import filename_stem as _filename_stem
from .registry import register
from .text import is_text

DROP_TAGS = (
    "script", "style", "noscript", "template", "nav", "aside", "form", "button", "input",
    "select", "textarea", "iframe", "object", "embed", "svg", "canvas", "dialog", "menu",
    "head", "link", "meta", "label",
)  # fmt: skip
DROP_ROLES = frozenset(
    {"navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar"}
)
# Words in an id/class ("site-nav", "sidebar_left") that mark boilerplate on sites without
# semantic tags, and whole names that do (Sphinx: "related" bars, "headerlink" pilcrows).
BOILERPLATE_WORDS = frozenset(
    {"nav", "navbar", "navigation", "menu", "sidebar", "breadcrumb", "breadcrumbs", "footer",
     "cookie", "cookies"}
)  # fmt: skip
BOILERPLATE_NAMES = frozenset({"related", "headerlink", "sphinxsidebar", "skip-link", "skiplink"})
HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
PRIVATE_USE = re.compile("[\ue000-\uf8ff]")
HEADINGS = {f"h{level}": level for level in range(1, 7)}
# Containers whose children are walked; anything else is inline and joins the current line.
BLOCK_TAGS = frozenset(
    {"address", "article", "blockquote", "body", "dd", "details", "div", "dl", "dt",
     "figcaption", "figure", "footer", "header", "hr", "html", "li", "main", "ol", "p",
     "section", "summary", "ul", "caption", "center"}
)  # fmt: skip
CONTENT_TAGS = frozenset({"article", "main", "section"})
MAX_DEPTH = 400


@register
class HtmlParser(Parser):
    kind = "html"
    label = "HTML page"
    extensions = (".html", ".htm")
    content_types = ("text/html", "application/xhtml+xml")

    def matches(self, data: bytes) -> bool:
        return is_text(data)

    def parse(
        self, data: bytes, *, filename: str, content_type: str | None, limits: ParseLimits
    ) -> ParsedDocument:
        if len(data) > limits.max_html_bytes:
            raise ParseError(
                f"The page is larger than the {limits.max_html_bytes // 2**20} MB of HTML "
                "this system accepts."
            )
        soup = BeautifulSoup(data, "lxml", from_encoding=_charset(content_type))
        page_title = _text_of(soup.title) if soup.title else ""
        root = _main_content(soup)
        _strip_boilerplate(root)
        h1s = [_text_of(h1) for h1 in root.find_all("h1")]
        builder = SectionBuilder()
        _Walker(builder).walk(root)
        title = _choose_title(page_title, h1s) or _filename_stem(filename) or "Untitled"
        return ParsedDocument(title=title, sections=builder.build(), metadata={})


def _charset(content_type: str | None) -> str | None:
    match = re.search(r"charset=[\"']?([\w.:-]+)", content_type or "", re.IGNORECASE)
    return match.group(1) if match else None


def _main_content(soup: BeautifulSoup) -> Tag:
    """<main>, role=main, or a lone <article>; else the whole body."""
    found = soup.find("main") or soup.find(attrs={"role": "main"})
    if isinstance(found, Tag):
        return found
    articles = soup.find_all("article")
    if len(articles) == 1:
        return articles[0]
    return soup.body or soup


def _strip_boilerplate(root: Tag) -> None:
    for tag in root.find_all(DROP_TAGS):
        tag.decompose()
    # Class-name guesses must never throw away the content itself, so containers of the
    # main text (and their ancestors) are exempt from them.
    content = root.find_all(["main", "article", "h1"])
    keep = {id(tag) for tag in content} | {id(p) for tag in content for p in tag.parents}
    stack: list[tuple[Tag, bool]] = [(root, False)]  # (element, inside article/main/section)
    while stack:
        parent, in_content = stack.pop()
        for child in list(parent.children):
            if not isinstance(child, Tag):
                continue
            if _is_boilerplate(child, in_content=in_content, guess=id(child) not in keep):
                child.decompose()
            else:
                stack.append((child, in_content or child.name in CONTENT_TAGS))


def _is_boilerplate(tag: Tag, *, in_content: bool, guess: bool) -> bool:
    if tag.name in ("header", "footer") and not in_content:
        return True  # page-level banner/footer; an article's own <header> holds its title
    if tag.get("role") in DROP_ROLES or tag.get("aria-hidden") == "true":
        return True
    if tag.has_attr("hidden") or HIDDEN_STYLE.search(str(tag.get("style") or "")):
        return True
    if not guess:
        return False
    names = _id_class_names(tag)
    words = {word for name in names for word in re.split(r"[-_]", name)}
    return bool(names & BOILERPLATE_NAMES or words & BOILERPLATE_WORDS)


def _id_class_names(tag: Tag) -> set[str]:
    classes = tag.get("class") or []
    names = [*(classes if isinstance(classes, list) else [classes]), str(tag.get("id") or "")]
    return {name.lower() for name in names if name}


def _choose_title(page_title: str, h1s: list[str]) -> str:
    """<title>, or the h1 it starts with ("Install | Docs" -> "Install"), or the first h1."""
    if not page_title:
        return next((h1 for h1 in h1s if h1), "")
    return next((h1 for h1 in h1s if h1 and page_title.startswith(h1)), page_title)


def _text_of(tag: Tag) -> str:
    return " ".join(tag.get_text(" ").replace("\u00b6", " ").split())


class _Walker:
    """Turns the tree into blocks: headings, paragraphs, list items, tables, code."""

    def __init__(self, builder: SectionBuilder) -> None:
        self.builder = builder
        self.line: list[str] = []  # inline text waiting for the end of its block
        self.lines: list[str] = []  # finished lines of the current block (split by <br>)
        self.prefix = ""  # list marker waiting for the item's first text

    def walk(self, element: Tag, depth: int = 0) -> None:
        if depth > MAX_DEPTH:
            raise ParseError("The page is nested too deeply to be read.")
        for child in element.children:
            if isinstance(child, NavigableString):
                if not isinstance(child, PreformattedString):  # comments, CDATA, doctype
                    self.line.append(str(child))
            elif isinstance(child, Tag):
                self._element(child, depth)
        if depth == 0:
            self._flush()

    def _element(self, tag: Tag, depth: int) -> None:
        name = tag.name
        if name == "br":
            self._break_line()
        elif name in HEADINGS:
            self._flush()
            self.builder.heading(HEADINGS[name], _text_of(tag))
        elif name == "pre":
            self._flush()
            self.builder.add(fenced(tag.get_text()))
        elif name == "table":
            self._flush()
            self.builder.add(_table_text(tag))
        elif name == "li":
            self._flush()
            self.prefix = "- "
            self.walk(tag, depth + 1)
            self._flush()
            self.prefix = ""  # an item holding only a table or code block used no marker
        elif name in BLOCK_TAGS:
            self._flush()
            self.walk(tag, depth + 1)
            self._flush()
        else:  # inline (<a>, <code>, <span>...); a block inside one still flushes itself
            self.walk(tag, depth + 1)

    def _break_line(self) -> None:
        # Private-use characters are icon-font glyphs, never words.
        text = " ".join(PRIVATE_USE.sub("", "".join(self.line)).split())
        if text:
            self.lines.append(text)
        self.line = []

    def _flush(self) -> None:
        self._break_line()
        block = "\n".join(self.lines)
        self.lines = []
        if block.strip():
            self.builder.add(self.prefix + block)
            self.prefix = ""


def _table_text(table: Tag) -> str:
    """One line per row: 'cell | cell'. Nested tables are flattened into their cell."""
    rows = []
    for row in table.find_all("tr"):
        if row.find_parent("table") is not table:
            continue
        cells = [_text_of(cell) for cell in row.find_all(["td", "th"], recursive=False)]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)
