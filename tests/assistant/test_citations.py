"""The streaming citation parser: explicit edge cases, then properties over random splits."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from assistant.answering.citations import (
    MAX_HELD_CHARS,
    CitationMarker,
    CitationStreamParser,
    parse_citations,
)

VALID = {1, 2, 3}


def stream(deltas: list[str], valid: set[int] = VALID) -> tuple[str, list[CitationMarker]]:
    parser = CitationStreamParser(valid)
    text, markers = "", []
    for delta in deltas:
        chunk, new = parser.feed(delta)
        text += chunk
        markers += new
    chunk, new = parser.finish()
    return text + chunk, markers + new


def numbers(markers: list[CitationMarker]) -> list[int]:
    return [m.number for m in markers]


# -- recognising markers -------------------------------------------------------------------------


def test_it_keeps_a_valid_marker_in_the_text_and_points_at_it():
    text, markers = parse_citations("Sky is blue [1].", VALID)

    assert text == "Sky is blue [1]."
    assert markers == [CitationMarker(number=1, start=12, end=15)]
    assert text[12:15] == "[1]"


def test_it_reassembles_a_marker_split_across_deltas():
    parser = CitationStreamParser(VALID)

    assert parser.feed("Blue [") == ("Blue", [])
    assert parser.feed("2") == ("", [])
    assert parser.feed("]") == ("", [])  # could still be a link: [2](url)
    assert parser.feed(" and") == (" [2] and", [CitationMarker(2, 5, 8)])
    assert parser.finish() == ("", [])


def test_it_reads_adjacent_markers_as_two_citations():
    text, markers = parse_citations("Yes[1][2].", VALID)

    assert text == "Yes[1][2]."
    assert markers == [CitationMarker(1, 3, 6), CitationMarker(2, 6, 9)]


@pytest.mark.parametrize("group", ["[1, 2]", "[1,2]", "[1 , 2]"])
def test_a_list_gives_one_marker_per_number_spanning_the_group(group):
    text, markers = parse_citations(f"A {group}.", VALID)

    assert text == f"A {group}."
    assert numbers(markers) == [1, 2]
    assert {(m.start, m.end) for m in markers} == {(2, 2 + len(group))}


def test_a_list_of_three_is_read():
    _, markers = parse_citations("A [1,2,3]", VALID)

    assert numbers(markers) == [1, 2, 3]


def test_a_marker_at_the_very_end_is_released_by_finish():
    parser = CitationStreamParser(VALID)

    assert parser.feed("Done [3]") == ("Done", [])
    assert parser.finish() == (" [3]", [CitationMarker(3, 5, 8)])


# -- unknown numbers -----------------------------------------------------------------------------


def test_it_removes_an_unknown_marker_with_the_space_before_it():
    text, markers = parse_citations("Sky is blue [7]. Grass [1] is green [9] too.", VALID)

    assert text == "Sky is blue. Grass [1] is green too."
    assert markers == [CitationMarker(1, 19, 22)]


def test_it_keeps_only_the_known_numbers_of_a_list():
    text, markers = parse_citations("A [1, 7, 2].", VALID)

    assert text == "A [1, 2]."
    assert numbers(markers) == [1, 2]
    assert text[markers[0].start : markers[0].end] == "[1, 2]"


def test_it_collapses_a_repeated_number():
    text, markers = parse_citations("A [2, 2].", VALID)

    assert text == "A [2]."
    assert numbers(markers) == [2]


def test_it_removes_an_unknown_marker_next_to_a_known_one():
    assert parse_citations("A [1][8] [2].", VALID)[0] == "A [1] [2]."


def test_it_leaves_unknown_numbers_glued_to_a_word_alone():
    text, markers = parse_citations("Take items[0] first, then Paris[1].", VALID)

    assert text == "Take items[0] first, then Paris[1]."
    assert numbers(markers) == [1]


# -- things that look like markers but are not ---------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "See [the docs](https://example.com).",
        "See [1](https://example.com/1).",
        "- [ ] todo\n- [x] done",
        "A footnote[^1].",
        r"Escaped \[1] bracket.",
        "In [2023] it changed.",
        "Nested [[x]] and [] and [,] and [1,] and [, 1].",
        "Unclosed [1 at the end",
    ],
)
def test_it_passes_non_citations_through_unchanged(text):
    assert parse_citations(text, VALID) == (text, [])


def test_it_ignores_markers_in_a_fenced_code_block():
    text = "Use this [1]:\n```python\nx = a[1] + b[7]\n```\nThen [2]."

    out, markers = parse_citations(text, VALID)

    assert out == text
    assert numbers(markers) == [1, 2]
    assert out[markers[1].start : markers[1].end] == "[2]"


def test_a_longer_fence_is_not_closed_by_a_shorter_run():
    text = "````\n```\n[7]\n```\n````\nok [7]"

    assert parse_citations(text, VALID)[0] == "````\n```\n[7]\n```\n````\nok"


def test_it_ignores_markers_in_inline_code():
    text = "Call `arr[7]` or ``x[9]`` here [1]."

    out, markers = parse_citations(text, VALID)

    assert out == text
    assert numbers(markers) == [1]


def test_a_stray_backtick_only_shields_the_rest_of_its_line():
    text = "Odd ` tick [7]\nNext line [7] and [1]."

    out, markers = parse_citations(text, VALID)

    assert out == "Odd ` tick [7]\nNext line and [1]."
    assert numbers(markers) == [1]


def test_a_fence_split_between_deltas_still_shields_its_content():
    text, markers = stream(["`", "`", "`\n[", "7]\n`", "``\n[", "1]"])

    assert text == "```\n[7]\n```\n[1]"
    assert numbers(markers) == [1]


# -- streaming behaviour -------------------------------------------------------------------------


def test_it_holds_back_only_a_possible_marker():
    parser = CitationStreamParser(VALID)

    assert parser.feed("Hello [") == ("Hello", [])
    assert parser.feed("world") == (" [world", [])
    assert parser.feed(" x [1") == (" x", [])
    assert parser.finish() == (" [1", [])


def test_a_bracket_group_longer_than_the_bound_is_text():
    group = "[" + ", ".join(["1"] * 12) + "]"
    parser = CitationStreamParser(VALID)
    emitted = ""

    for i, char in enumerate(group):
        emitted += parser.feed(char)[0]
        assert i + 1 - len(emitted) <= MAX_HELD_CHARS

    assert emitted + parser.finish()[0] == group
    assert parse_citations(group, VALID) == (group, [])


def test_plain_text_is_emitted_at_once():
    parser = CitationStreamParser(VALID)

    assert parser.feed("No citations here.") == ("No citations here.", [])


def test_feed_after_finish_is_an_error():
    parser = CitationStreamParser(VALID)
    parser.finish()

    assert parser.finish() == ("", [])
    with pytest.raises(RuntimeError):
        parser.feed("late")


# -- properties ----------------------------------------------------------------------------------

PIECES = [
    "[", "]", "1", "2", "7", "0", ",", ", ", " ", "\t", "\n", "`", "``", "```", "(", ")",
    "^", "\\", "x", "word", "[1]", "[2]", "[7]", "[1, 2]", "[1,7]", "[1](u)", "[ ]", "[^1]",
]  # fmt: skip

answers = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=40).map("".join),
    st.text(alphabet="[]0123789, \t\n`()^\\ab", max_size=80),
    st.text(max_size=60),
)


@st.composite
def splits(draw: st.DrawFn) -> tuple[str, list[str]]:
    text = draw(answers)
    cuts = sorted(draw(st.sets(st.integers(0, len(text)), max_size=12)))
    bounds = [0, *cuts, len(text)]
    return text, [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@settings(max_examples=400)
@given(splits())
def test_any_split_gives_the_same_text_and_markers_as_the_whole(case):
    text, deltas = case

    assert stream(deltas) == parse_citations(text, VALID)


@settings(max_examples=300)
@given(answers)
def test_one_character_at_a_time_matches_the_whole(text):
    assert stream(list(text)) == parse_citations(text, VALID)


@settings(max_examples=300)
@given(answers)
def test_every_marker_points_at_a_bracket_group_holding_its_valid_number(text):
    out, markers = parse_citations(text, VALID)

    for marker in markers:
        group = out[marker.start : marker.end]
        assert marker.number in VALID
        assert group.startswith("[") and group.endswith("]")
        assert str(marker.number) in group
    assert [m.start for m in markers] == sorted(m.start for m in markers)


@settings(max_examples=300)
@given(answers)
def test_it_never_holds_back_more_than_the_bound(text):
    everything = set(range(1000))
    assume(parse_citations(text, everything)[0] == text)  # output == input: held is measurable
    parser = CitationStreamParser(everything)
    emitted = ""

    for i, char in enumerate(text):
        emitted += parser.feed(char)[0]
        assert text.startswith(emitted)
        assert i + 1 - len(emitted) <= MAX_HELD_CHARS


@settings(max_examples=200)
@given(answers)
def test_text_without_markers_or_code_passes_unchanged(text):
    assume("[" not in text)

    assert parse_citations(text, VALID) == (text, [])
