"""The extractive answer's text (``assistant.answering.extractive``): no database, no model."""

from __future__ import annotations

from assistant.answering import extractive
from assistant.answering.citations import parse_citations


def source(n: int, text: str) -> dict:
    return {"n": n, "text": text, "title": f"Doc {n}"}


def test_it_introduces_the_passages_and_quotes_each_after_its_marker():
    text = extractive.answer_text(
        [source(1, "Book flights through the travel desk."), source(2, "Meals: 60 euros a day.")]
    )
    intro, first, second = text.split("\n\n")
    assert intro == extractive.INTRO and "isn't available" in intro
    assert first == "> [1] Book flights through the travel desk."
    assert second == "> [2] Meals: 60 euros a day."


def test_only_the_best_passages_are_quoted_in_their_order():
    text = extractive.answer_text([source(n, f"passage {n}") for n in range(1, 7)])
    assert [m.number for m in parse_citations(text, set(range(1, 7)))[1]] == [1, 2, 3]


def test_no_passage_gives_no_text():
    assert extractive.answer_text([]) == ""
    assert extractive.answer_text([source(1, "   \n ")]) == ""


def test_a_long_passage_is_cut_at_a_word_with_an_ellipsis():
    quoted = extractive.quote("word " * 400)
    assert len(quoted) <= extractive.PASSAGE_CHARS + 1
    assert quoted.endswith("word…")


def test_a_passage_cannot_change_the_shape_of_the_answer():
    # A heading, a list and an unclosed code fence, cut from the middle of a document.
    hostile = "# Heading\n\n- item\n\n```python\nprint('open fence')"
    text = extractive.answer_text([source(1, hostile), source(2, "after the fence")])
    assert "```" not in text and "\n#" not in text and "\n-" not in text
    # The second marker is still a citation: nothing in the first passage swallowed it.
    assert [m.number for m in parse_citations(text, {1, 2})[1]] == [1, 2]


def test_a_documents_own_bracketed_numbers_are_not_taken_for_citations():
    text = extractive.answer_text([source(1, "As shown in [2] and [2, 3], flights [1] cost.")])
    assert "As shown in (2) and (2, 3), flights (1) cost." in text
    assert [m.number for m in parse_citations(text, {1, 2, 3})[1]] == [1]


def test_a_quote_of_a_passage_no_longer_readable_gives_way_to_a_note():
    content = extractive.answer_text([source(1, "Open text."), source(2, "Secret salary bands.")])
    sources = [{"n": 1, "text": "Open text."}, {"n": 2, "unavailable": True}]

    shown = extractive.visible_content(extractive.MODEL, content, sources)

    assert "Secret" not in shown
    assert f"> [2] {extractive.UNAVAILABLE}" in shown
    assert "> [1] Open text." in shown and shown.startswith(extractive.INTRO)


def test_only_extractive_answers_are_redacted():
    text = "The bands are secret [2]."
    gone = [{"n": 2, "unavailable": True}]
    assert extractive.visible_content("scripted-model", text, gone) == text
    content = extractive.answer_text([source(1, "Open text.")])
    assert extractive.visible_content(extractive.MODEL, content, [{"n": 1}]) == content
