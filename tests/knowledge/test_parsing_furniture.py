"""Page furniture: navigation, headers and footers never reach passages.

Two layers, both without a database: the HTML parser's per-page rules (on real DocBook and
Sphinx markup), and ``knowledge.parsing.furniture``, which finds lines repeated at the edges
of many pages of one site (the counting across pages is tested with the database in
tests/knowledge/test_site_furniture.py).
"""

import time
from pathlib import Path

import pytest

from knowledge.parsing import ParsedDocument, ParseLimits, Section, parse_document
from knowledge.parsing import furniture as site
from knowledge.parsing.html import HtmlParser

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def html(body: str) -> str:
    return parse_document(
        f"<html><head><title>Page</title></head><body>{body}</body></html>".encode(),
        filename="page.html",
    ).text


# --- per page: real PostgreSQL (DocBook) and Sphinx markup ------------------------------------


def test_postgres_docbook_navigation_header_and_footer_are_not_indexed():
    page = (FIXTURES / "postgres-docs" / "maintenance.html").read_bytes()
    doc = parse_document(page, filename="maintenance.html")
    text = doc.text
    lines = text.split("\n")
    for furniture in ("Prev", "Up", "Home", "Next", "Part III. Server Administration"):
        assert not any(furniture in line.split(" | ") for line in lines), furniture
    assert "24.3. Character Set Support" not in text  # the previous page, in the footer
    # The content stays, the chapter's own table of contents (links only) included.
    assert doc.title == "Chapter 25. Routine Database Maintenance Tasks"
    assert doc.sections[0].heading_path == ("Chapter 25. Routine Database Maintenance Tasks",)
    assert "25.1.1. Vacuuming Basics" in text
    assert "check_postgres is available for monitoring database health" in text
    assert text.rstrip().endswith("a pleasant and productive experience with the system.")


def test_a_navigation_table_is_recognised_by_its_summary_without_class_names():
    text = html(
        '<table summary="Navigation footer"><tr><td><a href="a.html">Prev</a></td>'
        '<td>Chapter 24</td><td><a href="c.html">Next</a></td></tr></table>'
        "<p>Vacuum reclaims storage occupied by dead tuples.</p>"
    )
    assert text == "Vacuum reclaims storage occupied by dead tuples."


@pytest.mark.parametrize(
    "bar",
    [
        # Django's Sphinx theme, without its class="nav"
        '<div>&laquo; <a href="models.html">previous</a> | <a href="../index.html">up</a> | '
        '<a href="aggregation.html">next</a> &raquo;</div>',
        # Sphinx's classic "related" bar as a bare paragraph
        '<p><a href="genindex.html">index</a> | <a href="py-modindex.html">modules</a> | '
        '<a href="next.html">next</a> | <a href="prev.html">previous</a></p>',
        # Furo's footer ("related-pages": a class name no list had)
        '<div class="related-pages"><a class="next-page" href="t.html"><div class="page-info">'
        '<div class="context"><span>Next</span></div><div class="title">Tutorial</div></div></a>'
        '<a class="prev-page" href="i.html"><div class="page-info"><div class="context">'
        '<span>Previous</span></div><div class="title">Home</div></div></a></div>',
    ],
)
def test_a_row_of_links_around_the_content_is_dropped(bar):
    text = html(f"{bar}<h1>Making queries</h1><p>Django gives you a database API.</p>{bar}")
    assert text == "Django gives you a database API."


def test_generated_class_names_for_navigation_and_breadcrumbs_are_recognised():
    text = html(
        '<div class="navheader">25.1. Routine Vacuuming</div>'
        '<div id="page_footer">Last update: Nov 11, 2026</div>'
        '<div class="wy-breadcrumbs-aside">Docs » Routine Vacuuming</div>'
        "<p>Vacuum reclaims storage.</p>"
    )
    assert text == "Vacuum reclaims storage."


def test_links_that_are_content_stay():
    text = html(
        "<h1>See Also</h1>"
        '<p><a href="a.html">ALTER TABLE</a>, <a href="d.html">DROP TABLE</a></p>'
        '<p>Read <a href="q.html">the query guide</a> and <a href="m.html">models</a>.</p>'
        "<table><tr><th>Model field</th><th>Form field</th></tr>"
        '<tr><td><a href="#d">DateField</a></td><td><a href="#f">DateField</a></td></tr></table>'
        '<ul><li><a href="a.html">Installation</a></li><li><a href="b.html">Tutorial</a></li></ul>'
    )
    assert text.split("\n\n") == [
        "ALTER TABLE, DROP TABLE",
        "Read the query guide and models.",
        "Model field | Form field\nDateField | DateField",
        "- Installation",
        "- Tutorial",
    ]


def test_a_paragraph_of_links_without_separators_is_content():
    # Python's msilib page: a "See also" paragraph naming Windows API functions.
    text = html(
        '<h1>msilib</h1><div class="admonition seealso"><p class="admonition-title">See also</p>'
        '<p><a href="https://learn.microsoft.com/fci">FCICreate</a> '
        '<a href="https://learn.microsoft.com/uuid">UuidCreate</a> '
        '<a href="https://learn.microsoft.com/uuids">UuidToString</a></p></div>'
    )
    assert text == "See also\n\nFCICreate UuidCreate UuidToString"


def test_link_rows_inside_tables_and_lists_are_content():
    # Python's turtle page: a table of methods and their aliases, each cell a row of links.
    text = html(
        "<h1>turtle</h1><table><tr><th>Turtle motion</th><td>"
        '<p><a href="#f">forward()</a> | <a href="#fd">fd()</a></p>'
        '<p><a href="#b">backward()</a> | <a href="#bk">bk()</a></p></td></tr></table>'
        '<ul><li><p><a href="#s">Screen</a> | <a href="#t">Turtle</a></p></li></ul>'
    )
    assert "forward() | fd()" in text and "backward() | bk()" in text
    assert "Screen | Turtle" in text


def test_a_section_whose_heading_id_starts_with_nav_is_content():
    # Sphinx makes section ids from headings: "Navigating the Tcl/Tk reference manual".
    text = html(
        '<h1>tkinter</h1><section id="navigating-the-tcl-tk-reference-manual">'
        "<h2>Navigating the Tcl/Tk Reference Manual</h2>"
        "<p>The official Tk commands reference manual is often the most accurate.</p></section>"
    )
    assert text == "The official Tk commands reference manual is often the most accurate."


def test_a_page_made_only_of_link_rows_is_not_emptied():
    rows = "".join(
        f'<p><a href="{n}a.html">Policy {n}</a> | <a href="{n}b.html">Form {n}</a></p>'
        for n in range(1, 6)
    )
    text = html(f"<h1>Site map</h1>{rows}")
    assert text.split("\n\n") == [f"Policy {n} | Form {n}" for n in range(1, 6)]


def test_a_table_of_contents_page_keeps_its_links():
    entries = "".join(
        f'<dt><a href="s{n}.html">25.{n}. Section {n}</a></dt><dd><dl>'
        f'<dt><a href="s{n}.html#a">25.{n}.1. Part</a></dt></dl></dd>'
        for n in range(1, 9)
    )
    text = html(f'<h1>Contents</h1><div class="toc"><dl class="toc">{entries}</dl></div>')
    assert "25.8.1. Part" in text and "25.1. Section 1" in text


# --- across pages: the plain logic --------------------------------------------------------


def page(*lines: str, heading: str = "Guide") -> ParsedDocument:
    return ParsedDocument(title=heading, sections=[Section("\n\n".join(lines), (heading,))])


HEADER = "ACME intranet"
FOOTER = "© 2026 ACME Corp · Privacy · Terms"


def decide(pages: list[ParsedDocument]) -> list[ParsedDocument]:
    """Every page after every page was counted: what indexing converges to."""
    edges = [site.page_edges(p) for p in pages]
    counts: dict[int, int] = {}
    for page_edges in edges:
        for fingerprint in {e.fingerprint for e in page_edges if e.fingerprint is not None}:
            counts[fingerprint] = counts.get(fingerprint, 0) + 1
    repeated = site.repeated(counts, len(pages))
    return [
        site.without_furniture(p, site.furniture(e, repeated))
        for p, e in zip(pages, edges, strict=True)
    ]


def test_lines_every_page_shows_at_its_edges_are_furniture():
    pages = [page(HEADER, f"Topic {n} is explained here in full.", FOOTER) for n in range(3)]
    assert [p.text for p in decide(pages)] == [
        f"Topic {n} is explained here in full." for n in range(3)
    ]


def test_a_line_in_only_one_or_two_pages_is_kept():
    pages = [
        page("Shared by two", "Alpha content sentence here for the page."),
        page("Shared by two", "Beta content sentence here for the page."),
        page("Gamma content sentence here for the page.", "Alone"),
    ]
    assert [p.text for p in decide(pages)] == [p.text for p in pages]


def test_a_line_shared_by_a_few_pages_of_a_large_site_is_kept():
    # Documentation repeats real sentences at the ends of a few sibling pages.
    shared = "This parameter can only be set in the postgresql.conf file."
    pages = [page(f"Setting {n} controls one thing.", shared) for n in range(4)]
    pages += [page(f"Page {n} is about something else entirely.") for n in range(6)]
    assert [p.text for p in decide(pages)] == [p.text for p in pages]
    assert site.min_pages(10) == 5 and site.min_pages(3) == 3


def test_only_the_edges_are_peeled_and_content_stops_the_peeling():
    middle = page(
        "Unique title",
        "Body sentence one is here for you.",
        HEADER,
        "Body ends with this last sentence.",
    )
    others = [page(HEADER, f"Other page {n} says something new.", FOOTER) for n in range(3)]
    kept = decide([middle, *others])[0]
    # HEADER sits after a sentence of content: not an edge, so it stays.
    assert kept.text == middle.text


def test_short_page_specific_lines_are_peeled_past_but_kept():
    pages = [
        page(HEADER, f"Chapter {n} | Home", f"Content sentence number {n} is here.", FOOTER)
        for n in range(3)
    ]
    assert [p.text for p in decide(pages)] == [
        f"Chapter {n} | Home\n\nContent sentence number {n} is here." for n in range(3)
    ]


def test_code_blocks_are_never_furniture():
    code = "```\npython manage.py migrate\n```"
    pages = [page(code, f"Step {n} explains the command above.") for n in range(3)]
    assert [p.text for p in decide(pages)] == [p.text for p in pages]


def test_a_page_that_is_only_furniture_is_kept_whole():
    pages = [page(HEADER, FOOTER)] + [
        page(HEADER, f"Page {n} is useful.", FOOTER) for n in range(3)
    ]
    assert decide(pages)[0].text == pages[0].text


def test_fingerprints_ignore_case_and_spacing_and_fit_a_bigint():
    assert site.fingerprint("Prev  |  Up") == site.fingerprint("prev | up")
    assert site.fingerprint("Prev | Up") != site.fingerprint("Prev | Down")
    assert all(-(2**63) <= site.fingerprint(f"line {n}") < 2**63 for n in range(100))
    assert site.fingerprint("x" * 2000) is None


def test_a_deeply_nested_hostile_page_costs_the_link_row_rule_little():
    """Every <div> is asked whether it is a link row; asking must not walk its whole subtree
    (390 nested levels with siblings took 40 times the old parser's time before the bound)."""
    depth = 390
    page = (
        "<html><body>"
        + "".join(f"<div><p>para {i} text here.</p>" + "<span></span>" * 20 for i in range(depth))
        + "</div>" * depth
        + "</body></html>"
    ).encode()

    def best_of_three(parser: HtmlParser) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            parser.parse(page, filename="deep.html", content_type=None, limits=ParseLimits())
            times.append(time.perf_counter() - started)
        return min(times)

    class WithoutFurnitureRules(HtmlParser):
        furniture_rules = False

    assert best_of_three(HtmlParser()) < 5 * best_of_three(WithoutFurnitureRules()) + 0.05
