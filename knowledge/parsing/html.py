"""HTML: the page's main content, with h1-h6 as the heading path.

Boilerplate (navigation, page header/footer, sidebars, scripts, forms, hidden elements) is
removed before walking the tree. Only text nodes are read, never attributes, so event
handlers, inline styles and URLs cannot leak into passages.

The tree is libxml2's (lxml's HTML parser, recovering from broken markup). The rules below
were first written against BeautifulSoup's tree over the same parser and keep its results:
text on either side of a removed element or a comment stays two strings (a heading's words
do not run together), text inside <rt>/<rp> is left out of headings, titles, table cells and
code blocks, and the encoding is chosen in the same order (HTTP charset, byte-order mark,
declaration in the document, then UTF-8 if the bytes are valid UTF-8, else a detected one).
"""

from __future__ import annotations

import functools
import re

from lxml import etree

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
# Word shapes that mark boilerplate however a generator glues them: DocBook's "navheader" and
# "navfooter", "navbar", "navlinks", "sitefooter", "breadcrumbs". Not any word starting with
# "nav": Sphinx gives sections ids made from their headings ("navigating-the-reference").
BOILERPLATE_WORD_SHAPES = re.compile(
    r"^nav(?:bar|header|footer|links?|menu|list|box|top|bottom|tabs?|panel|wrap(?:per)?)$"
    r"|^\w+footer$|breadcrumb"
)
# Accessible names and table summaries that say what a block is ("Navigation header").
LABEL_ATTRIBUTES = ("aria-label", "summary")
# A "link row" ("Prev | Up | Home | Next", "« previous | up | next »") is a short block of at
# least two links and nothing else but these separators. Nothing inside a list or a table is
# one (a table of contents is made of lists of links; Django's "model field | form field" table
# and Python's "turtle: forward() | fd()" table are links only), and commas ("See also:
# ALTER TABLE, DROP TABLE") are prose.
LINK_ROW_TAGS = ("p", "div", "center")
LINK_ROW_MAX_WORDS = 16
LINK_ROW_MAX_CHARS = 240  # with the spaces and separators of 16 words
LINK_ROW_MAX_NODES = 64
LINK_ROW_SEPARATORS = frozenset("|«»‹›·•→←>/[]")  # and whitespace
LINK_ROW_BLOCKERS = frozenset(
    {"ul", "ol", "dl", "li", "table", "pre", *(f"h{n}" for n in range(1, 7))}
)
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
# Text inside these is not prose of the element around it (ruby annotations, code, styles):
# it is left out of headings, titles, table cells and code blocks.
NON_CONTENT_TEXT = frozenset({"rt", "rp", "style", "script", "template"})
MAX_DEPTH = 400
CLASS_NAMES = re.compile(r"\S+")
# Encoding declarations, searched like browsers' pre-scan: an XML declaration at the very
# start, else a <meta ... charset=...> near the start of the page.
XML_ENCODING = re.compile(rb"^\s*<\?.*encoding=['\"](.*?)['\"].*\?>", re.IGNORECASE)
META_CHARSET = re.compile(rb"<\s*meta[^>]+charset\s*=\s*[\"']?([^>]*?)[ /;'\">]", re.IGNORECASE)
# windows-1252 as browsers decode it: the five bytes it leaves undefined become U+0081...
WINDOWS_1252 = {
    byte: bytes([byte]).decode("cp1252", errors="ignore") or chr(byte) for byte in range(0x80, 0xA0)
}
# Whether any element sits 2,000 levels deep (cheap: the node set empties at the real depth).
TOO_DEEP = etree.XPath("boolean(" + "/*" * 2000 + ")")
ROLE_MAIN = etree.XPath("(descendant-or-self::*[@role='main'])[1]")
# The synthetic element that stands for the document when a page has no <body>.
DOCUMENT = "x-document"


@register
class HtmlParser(Parser):
    kind = "html"
    label = "HTML page"
    extensions = (".html", ".htm")
    content_types = ("text/html", "application/xhtml+xml")
    # The structural furniture rules (generated class names, navigation labels, link rows);
    # off only to measure what they remove (bench/boilerplate.py).
    furniture_rules = True

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
        html = _parse_tree(data, _charset(content_type))
        title = _first(html, "title")
        page_title = _text_of(title) if title is not None else ""
        root = _main_content(html)
        _strip_boilerplate(root, furniture_rules=self.furniture_rules)
        h1s = [_text_of(h1) for h1 in root.iter("h1") if h1 is not root]
        builder = SectionBuilder()
        _Walker(builder).walk(root)
        title = _choose_title(page_title, h1s) or _filename_stem(filename) or "Untitled"
        return ParsedDocument(title=title, sections=builder.build(), metadata={})


def _charset(content_type: str | None) -> str | None:
    match = re.search(r"charset=[\"']?([\w.:-]+)", content_type or "", re.IGNORECASE)
    return match.group(1) if match else None


# --- reading the bytes -------------------------------------------------------------------


def _parse_tree(data: bytes, charset: str | None) -> etree._Element | None:
    """The <html> element, or None for a page without any element (empty, only a comment).

    The declared encodings (HTTP charset, byte-order mark, <meta> or XML declaration) are
    handed to libxml2 in turn until one is accepted; an unknown name (a typo in a <meta>) or
    bytes invalid in it move on to the next. Undeclared bytes are UTF-8 when they decode as
    UTF-8, else what charset_normalizer detects, else windows-1252 (decoded here, so that no
    byte can stop the parser).
    """
    markup, sniffed = _strip_byte_order_mark(data)
    tried: set[str] = set()
    for encoding in (charset, sniffed, _declared_encoding(markup)):
        if not encoding or encoding.lower() in tried:
            continue
        tried.add(encoding.lower())
        try:
            return _parse(markup, encoding)
        except (UnicodeDecodeError, LookupError, etree.ParserError, etree.XMLSyntaxError):
            continue
    if "utf-8" not in tried and _is_utf8(markup):
        return _parse(markup, "utf-8")
    guess = _detect_encoding(markup)  # legacy pages: EUC-KR, GB2312, KOI8-R, TIS-620...
    if guess and guess.lower() not in tried:
        try:
            return _parse(markup, guess)
        except (UnicodeDecodeError, LookupError, etree.ParserError, etree.XMLSyntaxError):
            pass
        try:  # a codec Python has and libxml2 lacks (euc_jis_2004): decode here
            return _parse(markup.decode(guess, errors="replace"), None)
        except LookupError:
            pass
    return _parse(markup.decode("latin-1").translate(WINDOWS_1252), None)


def _parse(markup: bytes | str, encoding: str | None) -> etree._Element | None:
    # huge_tree lifts libxml2's nesting limit from 256 to 2048 levels; past it libxml2 drops
    # the rest of the page without an error, so such a page is refused instead.
    parser = etree.HTMLParser(recover=True, huge_tree=True, encoding=encoding)
    parser.feed(markup)
    html = parser.close()
    if html is not None and TOO_DEEP(html):
        raise ParseError("The page is nested too deeply to be read.")
    return html


def _detect_encoding(markup: bytes) -> str | None:
    """charset_normalizer's guess (a declared dependency), as BeautifulSoup used to ask."""
    import charset_normalizer

    return charset_normalizer.detect(markup)["encoding"]


def _is_utf8(markup: bytes) -> bool:
    try:
        markup.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _strip_byte_order_mark(data: bytes) -> tuple[bytes, str | None]:
    if len(data) >= 4 and data[:2] == b"\xfe\xff" and data[2:4] != b"\x00\x00":
        return data[2:], "utf-16be"
    if len(data) >= 4 and data[:2] == b"\xff\xfe" and data[2:4] != b"\x00\x00":
        return data[2:], "utf-16le"
    if data[:3] == b"\xef\xbb\xbf":
        return data[3:], "utf-8"
    if data[:4] == b"\x00\x00\xfe\xff":
        return data[4:], "utf-32be"
    if data[:4] == b"\xff\xfe\x00\x00":
        return data[4:], "utf-32le"
    return data, None


def _declared_encoding(markup: bytes) -> str | None:
    match = XML_ENCODING.search(markup, 0, 1024) or META_CHARSET.search(
        markup, 0, max(2048, int(len(markup) * 0.05))
    )
    if match and match.group(1):
        return match.group(1).decode("ascii", "replace").lower()
    return None


# --- choosing and cleaning the content ---------------------------------------------------


def _first(html: etree._Element | None, tag: str) -> etree._Element | None:
    return next(html.iter(tag), None) if html is not None else None


def _main_content(html: etree._Element | None) -> etree._Element:
    """<main>, role=main, or a lone <article>; else the body, else the whole document."""
    if html is not None:
        found = _first(html, "main")
        if found is None:
            found = next(iter(ROLE_MAIN(html)), None)
        if found is not None:
            return found
        articles = list(html.iter("article"))
        if len(articles) == 1:
            return articles[0]
        body = _first(html, "body")
        if body is not None:
            return body
    document = etree.Element(DOCUMENT)
    if html is not None:
        document.append(html)
    return document


def _remove(element: etree._Element) -> None:
    """Take an element out, leaving the text after it in place and still a separate string."""
    placeholder = etree.Comment()
    placeholder.tail = element.tail
    element.getparent().replace(element, placeholder)  # type: ignore[union-attr]


def _strip_boilerplate(root: etree._Element, *, furniture_rules: bool = True) -> None:
    for element in list(root.iter(*DROP_TAGS)):
        if element is not root:
            _remove(element)
    # Class-name guesses must never throw away the content itself, so containers of the
    # main text (and their ancestors) are exempt from them.
    keep: set[etree._Element] = set()
    for element in root.iter("main", "article", "h1"):
        if element is not root:
            keep.add(element)
            keep.update(element.iterancestors())
    stack: list[tuple[etree._Element, bool]] = [(root, False)]  # (element, inside content)
    while stack:
        parent, in_content = stack.pop()
        for child in list(parent):
            name = child.tag
            if not isinstance(name, str):
                continue  # comments, processing instructions
            if _is_boilerplate(
                child, name, in_content=in_content, keep=keep, furniture_rules=furniture_rules
            ):
                _remove(child)
            elif len(child):
                stack.append((child, in_content or name in CONTENT_TAGS))
    if furniture_rules:
        _strip_link_rows(root)


def _strip_link_rows(root: etree._Element) -> None:
    """Removes short rows of links ("Prev | Up | Home | Next") whatever their class names.

    A page made only of such rows (a site map of short link lines) keeps them: the rule is
    for furniture around content, and must never empty a page.
    """
    rows: list[etree._Element] = []
    stack = [root]
    while stack:
        parent = stack.pop()
        for child in parent:
            if not isinstance(child.tag, str):
                continue
            if child.tag in LINK_ROW_TAGS and _is_link_row(child):
                rows.append(child)
            elif len(child) and child.tag not in LINK_ROW_BLOCKERS:
                stack.append(child)
    if not rows:
        return
    row_chars = sum(len(_get_text(row).strip()) for row in rows)
    if row_chars >= 0.9 * len(_get_text(root).strip()):
        return
    for row in rows:
        _remove(row)


def _is_link_row(element: etree._Element) -> bool:
    # Every <div> of the page is asked, however deep: look at a few dozen nodes at most, so the
    # question costs the same for a 400-level page as for a flat one.
    links = chars = 0
    for seen, node in enumerate(element.iter()):
        if seen > LINK_ROW_MAX_NODES:
            return False
        if node is not element:
            chars += len(node.tail or "")
        if not isinstance(node.tag, str):
            continue
        if node.tag in LINK_ROW_BLOCKERS:
            return False
        chars += len(node.text or "")
        if chars > LINK_ROW_MAX_CHARS:
            return False
        if node.tag == "a":
            links += 1
    if links < 2 or len(_text_of(element).split()) > LINK_ROW_MAX_WORDS:
        return False
    if sum(1 for link in element.iter("a") if _text_of(link)) < 2:
        return False
    between = "".join(_text_outside_links(element))
    if "".join(ch for ch in between if ch not in LINK_ROW_SEPARATORS).strip():
        return False
    # Links in a paragraph with only spaces between them are a sentence's worth of names
    # (Python's msilib: "See also: FCICreate UuidCreate UuidToString"); a bar has separators.
    return element.tag != "p" or any(ch in LINK_ROW_SEPARATORS for ch in between)


def _text_outside_links(element: etree._Element) -> list[str]:
    """The strings of ``element`` that no <a> holds (before, between and after its links)."""
    texts = [element.text or ""]
    stack = [iter(element)]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
            continue
        texts.append(child.tail or "")
        if child.tag != "a" and isinstance(child.tag, str) and child.tag not in NON_CONTENT_TEXT:
            texts.append(child.text or "")
            stack.append(iter(child))
    return texts


def _is_boilerplate(
    tag: etree._Element,
    name: str,
    *,
    in_content: bool,
    keep: set[etree._Element],
    furniture_rules: bool = True,
) -> bool:
    if name in ("header", "footer") and not in_content:
        return True  # page-level banner/footer; an article's own <header> holds its title
    attributes = tag.attrib
    if not attributes:
        return False
    if attributes.get("role") in DROP_ROLES or attributes.get("aria-hidden") == "true":
        return True
    if "hidden" in attributes or HIDDEN_STYLE.search(attributes.get("style") or ""):
        return True
    if tag in keep:
        return False
    labels = " ".join(attributes.get(name) or "" for name in LABEL_ATTRIBUTES)
    if furniture_rules and labels.strip() and _label_marks_boilerplate(labels):
        return True
    classes, id_ = attributes.get("class"), attributes.get("id")
    if not (classes or id_):
        return False
    return _names_mark_boilerplate(classes or "", id_ or "", furniture_rules)


@functools.lru_cache(maxsize=1024)
def _label_marks_boilerplate(label: str) -> bool:
    return bool({word.lower() for word in re.findall(r"\w+", label)} & BOILERPLATE_WORDS)


@functools.lru_cache(maxsize=4096)
def _names_mark_boilerplate(classes: str, id_: str, shapes: bool = True) -> bool:
    names = {name.lower() for name in [*CLASS_NAMES.findall(classes), id_] if name}
    words = {word for name in names for word in re.split(r"[-_]", name)}
    return bool(
        names & BOILERPLATE_NAMES
        or words & BOILERPLATE_WORDS
        or (shapes and any(BOILERPLATE_WORD_SHAPES.search(word) for word in words))
    )


def _choose_title(page_title: str, h1s: list[str]) -> str:
    """<title>, or the h1 it starts with ("Install | Docs" -> "Install"), or the first h1."""
    if not page_title:
        return next((h1 for h1 in h1s if h1), "")
    return next((h1 for h1 in h1s if h1 and page_title.startswith(h1)), page_title)


# --- text --------------------------------------------------------------------------------


def _strings(element: etree._Element) -> list[str]:
    """The element's text nodes in order, each separate; none inside <rt>, <script>..."""
    if element.tag in NON_CONTENT_TEXT or any(
        ancestor.tag in NON_CONTENT_TEXT for ancestor in element.iterancestors()
    ):
        return []
    if not len(element):
        return [element.text] if element.text else []
    strings: list[str] = []
    _collect(element, strings)
    return strings


def _collect(element: etree._Element, strings: list[str]) -> None:
    """Text and tails in document order, without recursion (nesting may be 2,000 deep)."""
    if element.text:
        strings.append(element.text)
    stack = [(element, iter(element))]
    while stack:
        node, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            if stack and node.tail:
                strings.append(node.tail)
        elif isinstance(child.tag, str) and child.tag not in NON_CONTENT_TEXT:
            if child.text:
                strings.append(child.text)
            stack.append((child, iter(child)))
        elif child.tail:
            strings.append(child.tail)


def _get_text(element: etree._Element) -> str:
    return "".join(_strings(element))


def _text_of(element: etree._Element) -> str:
    return " ".join(" ".join(_strings(element)).replace("\u00b6", " ").split())


class _Walker:
    """Turns the tree into blocks: headings, paragraphs, list items, tables, code."""

    def __init__(self, builder: SectionBuilder) -> None:
        self.builder = builder
        self.line: list[str] = []  # inline text waiting for the end of its block
        self.lines: list[str] = []  # finished lines of the current block (split by <br>)
        self.prefix = ""  # list marker waiting for the item's first text

    def walk(self, element: etree._Element, depth: int = 0) -> None:
        if depth > MAX_DEPTH:
            raise ParseError("The page is nested too deeply to be read.")
        if element.text:
            self.line.append(element.text)
        for child in element:
            if isinstance(child.tag, str):  # comments and processing instructions: tail only
                self._element(child, depth)
            if child.tail:
                self.line.append(child.tail)
        if depth == 0:
            self._flush()

    def _element(self, tag: etree._Element, depth: int) -> None:
        name = tag.tag
        if name == "br":
            self._break_line()
        elif name in HEADINGS:
            self._flush()
            self.builder.heading(HEADINGS[name], _text_of(tag))
        elif name == "pre":
            self._flush()
            self.builder.add(fenced(_get_text(tag)))
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


def _table_text(table: etree._Element) -> str:
    """One line per row: 'cell | cell'. Nested tables are flattened into their cell."""
    rows = []
    for row in table.iter("tr"):
        if row is table or next(row.iterancestors("table"), None) is not table:
            continue
        cells = [_text_of(cell) for cell in row if cell.tag in ("td", "th")]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)
