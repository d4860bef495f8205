"""Chunking follows the document's structure and keeps every chunk near the target size."""

import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from knowledge.chunking import ChunkDraft, approx_token_count, chunk_document
from knowledge.parsing import ParsedDocument, Section, parse_document

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "theta",
    "kappa",
    "lambda",
    "sigma",
    "omega",
]


def sentence(n: int, words: int = 12) -> str:
    """A distinct, recognisable sentence: 'S7 alpha beta ... .'"""
    return f"S{n} " + " ".join(WORDS[(n + i) % len(WORDS)] for i in range(words - 1)) + "."


def paragraph(start: int, sentences: int) -> str:
    return " ".join(sentence(n) for n in range(start, start + sentences))


def doc(*sections: Section, title: str = "Handbook") -> ParsedDocument:
    return ParsedDocument(title=title, sections=list(sections), metadata={})


def sentence_ids(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\bS(\d+)\b", text)]


def test_an_empty_document_has_no_chunks():
    assert chunk_document(doc()) == []
    assert chunk_document(doc(Section("   \n\n  "))) == []


def test_a_short_section_is_one_chunk_with_context_for_embedding():
    chunks = chunk_document(doc(Section("Laptops are replaced every 3 years.", ("IT", "Hardware"))))
    assert chunks == [
        ChunkDraft(
            ordinal=0,
            text="Laptops are replaced every 3 years.",
            heading_path=("IT", "Hardware"),
            page=None,
            token_count=approx_token_count("Laptops are replaced every 3 years."),
            embed_text="Handbook > IT > Hardware\n\nLaptops are replaced every 3 years.",
        )
    ]


def test_embed_text_does_not_repeat_a_heading_equal_to_the_title():
    [chunk] = chunk_document(
        doc(Section("Body text here.", ("Handbook", "Leave")), title="Handbook")
    )
    assert chunk.embed_text == "Handbook > Leave\n\nBody text here."


def test_long_sections_split_at_paragraphs_when_paragraphs_fit():
    paragraphs = [paragraph(10 * i, 4) for i in range(6)]  # ~52 tokens each
    chunks = chunk_document(
        doc(Section("\n\n".join(paragraphs), ("Policy",))), target_tokens=120, overlap_tokens=0
    )
    assert len(chunks) == 3
    for chunk in chunks:
        assert chunk.heading_path == ("Policy",)
        assert all(part in paragraphs for part in chunk.text.split("\n\n"))
    assert "\n\n".join(c.text for c in chunks) == "\n\n".join(paragraphs)


def test_a_long_paragraph_splits_at_sentences_with_overlap():
    text = paragraph(0, 40)  # one paragraph, ~480 tokens
    chunks = chunk_document(doc(Section(text)), target_tokens=100, overlap_tokens=20)
    assert len(chunks) >= 5
    for chunk in chunks:
        assert chunk.text.endswith(".")  # every cut is at a sentence boundary
        assert chunk.token_count <= 150
    for before, after in zip(chunks, chunks[1:], strict=False):
        # The next chunk starts with the previous chunk's last sentence.
        assert sentence_ids(after.text)[0] == sentence_ids(before.text)[-1]
    covered = {n for chunk in chunks for n in sentence_ids(chunk.text)}
    assert covered == set(range(40))


def test_overlap_is_never_larger_than_a_quarter_of_the_target():
    chunks = chunk_document(doc(Section(paragraph(0, 40))), target_tokens=100, overlap_tokens=500)
    assert all(chunk.token_count <= 150 for chunk in chunks)


def test_different_headings_are_never_merged_when_sections_are_not_tiny():
    sections = [Section(paragraph(0, 4), ("Leave",)), Section(paragraph(10, 4), ("Expenses",))]
    chunks = chunk_document(doc(*sections), target_tokens=200)
    assert [(c.heading_path, c.text) for c in chunks] == [
        (s.heading_path, s.text) for s in sections
    ]


def test_tiny_sibling_sections_merge_under_their_parent_with_their_headings():
    faq = [
        Section("How do I reset my password? Use the portal.", ("FAQ",)),
        Section("Ask IT.", ("FAQ", "VPN")),
        Section("Call 1234.", ("FAQ", "Phones")),
        Section("Badge office, floor 2.", ("FAQ", "Badges")),
    ]
    [chunk] = chunk_document(doc(*faq))
    assert chunk.heading_path == ("FAQ",)
    assert chunk.text == (
        "How do I reset my password? Use the portal.\n\nVPN\nAsk IT.\n\nPhones\nCall 1234.\n\nBadges\nBadge office, floor 2."
    )


def test_tiny_sections_of_different_branches_or_pages_stay_apart():
    chunks = chunk_document(
        doc(Section("Ask IT.", ("IT", "VPN")), Section("Ask HR.", ("HR", "Leave")))
    )
    assert [c.heading_path for c in chunks] == [("IT", "VPN"), ("HR", "Leave")]
    pages = chunk_document(doc(Section("Slide one.", (), 1), Section("Slide two.", (), 2)))
    assert [(c.page, c.text) for c in pages] == [(1, "Slide one."), (2, "Slide two.")]


def test_a_tiny_section_does_not_merge_into_a_big_one():
    chunks = chunk_document(
        doc(Section(paragraph(0, 8), ("A",)), Section("Short note.", ("A", "B")))
    )
    assert [c.heading_path for c in chunks] == [("A",), ("A", "B")]


def test_code_blocks_with_blank_lines_stay_whole():
    code = "```python\ndef a():\n    return 1\n\n\ndef b():\n    return 2\n```"
    text = "\n\n".join([paragraph(0, 5), code, paragraph(20, 5)])
    chunks = chunk_document(doc(Section(text)), target_tokens=80, overlap_tokens=0)
    assert sum(code in chunk.text for chunk in chunks) == 1


def test_an_oversized_code_block_is_split_between_lines_and_refenced():
    lines = [f"value_{i} = compute({i}, scale=2)" for i in range(120)]
    code = "```python\n" + "\n".join(lines) + "\n```"
    chunks = chunk_document(doc(Section(code)), target_tokens=100)
    assert len(chunks) > 3
    recovered = []
    for chunk in chunks:
        assert chunk.text.startswith("```python\n") and chunk.text.endswith("\n```")
        assert chunk.token_count <= 150
        recovered += chunk.text.split("\n")[1:-1]
    assert recovered == lines


def test_table_rows_are_kept_whole_when_a_table_is_split():
    rows = [f"Team {i} | team{i}@example.com | Floor {i % 5}" for i in range(60)]
    chunks = chunk_document(doc(Section("\n".join(rows))), target_tokens=100)
    assert len(chunks) > 1
    assert [line for chunk in chunks for line in chunk.text.split("\n")] == rows


def test_a_giant_word_is_cut_rather_than_overflowing():
    chunks = chunk_document(doc(Section("x" * 5000 + " tail")), target_tokens=50)
    assert all(chunk.token_count <= 75 for chunk in chunks)
    assert "".join(chunk.text for chunk in chunks).replace(" ", "").startswith("x" * 5000)


def test_the_token_counter_is_pluggable():
    def count_words(text: str) -> int:
        return len(text.split())

    chunks = chunk_document(
        doc(Section(paragraph(0, 30))), target_tokens=60, count_tokens=count_words
    )
    assert all(chunk.token_count == count_words(chunk.text) <= 90 for chunk in chunks)


def test_ordinals_are_consecutive_and_pages_are_kept():
    sections = [Section(paragraph(100 * p, 20), ("Report",), p) for p in (1, 2, 3)]
    chunks = chunk_document(doc(*sections), target_tokens=100)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert all(n // 100 == chunk.page for n in sentence_ids(chunk.text))


def test_a_real_document_chunks_within_bounds_and_structure():
    page = (FIXTURES / "django-docs" / "tutorial01.html").read_bytes()
    parsed = parse_document(page, filename="tutorial01.html")
    chunks = chunk_document(parsed, target_tokens=200, overlap_tokens=30)
    section_paths = {s.heading_path for s in parsed.sections}
    assert len(chunks) > 10
    for chunk in chunks:
        assert chunk.token_count <= 300
        assert chunk.heading_path in section_paths
        assert chunk.embed_text.startswith("Writing your first Django app, part 1")
        fences = [line for line in chunk.text.split("\n") if line.startswith("```")]
        assert len(fences) % 2 == 0, chunk.text
    assert any("python manage.py runserver" in chunk.text for chunk in chunks)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(
                st.lists(
                    st.sampled_from(WORDS + ["end.", "stop!", "why?"]), min_size=1, max_size=80
                ),
                min_size=1,
                max_size=6,
            ),
            st.sampled_from([(), ("A",), ("A", "B"), ("A", "C"), ("D",)]),
        ),
        max_size=8,
    ),
    st.integers(min_value=20, max_value=300),
)
def test_no_chunk_exceeds_one_and_a_half_targets_and_no_word_is_lost(raw_sections, target):
    sections = [
        Section("\n\n".join(" ".join(p) for p in paragraphs), path)
        for paragraphs, path in raw_sections
    ]
    chunks = chunk_document(doc(*sections), target_tokens=target)
    assert all(chunk.token_count <= target * 1.5 for chunk in chunks)
    words_in = [w for s in sections for w in s.text.split()]
    words_out = " ".join(chunk.text for chunk in chunks).split()
    assert set(words_in) <= set(words_out)
    assert len(words_out) >= len(words_in)


# --- counting the tokens once -------------------------------------------------------------

MIXED_SECTIONS = [
    Section("Intro. " + paragraph(0, 3), ("Guide",)),
    Section("Tiny one.", ("Guide", "FAQ", "Q1")),
    Section("Tiny two!", ("Guide", "FAQ", "Q2")),
    Section(paragraph(10, 40) + "\n\n" + "y" * 900 + " after the giant word.", ("Guide", "Long")),
    Section("```python\n" + "\n".join(f"value_{i} = compute({i})" for i in range(120)) + "\n```"),
    Section("\n".join(f"Row {i} | cell {i} | other" for i in range(80)), ("Guide", "Table")),
    Section("- " + "\n- ".join(f"item {i} of the list" for i in range(70)), page=3),
    Section("   \n\n  "),
    Section(paragraph(200, 2) + "\n\n\n   \n" + paragraph(300, 25), ("Other",), page=4),
]


def counting(counter, *, additive: bool):
    """A copy of `counter` that records each text it is asked about."""
    seen: list[str] = []

    def count(text: str) -> int:
        seen.append(text)
        return counter(text)

    count.tokens_additive = additive  # type: ignore[attr-defined]
    return count, seen


def test_an_additive_counter_gives_the_same_chunks_and_counts_each_text_once():
    expected_by_target = {}
    for target in (16, 40, 120, 400):
        plain, plain_seen = counting(approx_token_count, additive=False)
        additive, additive_seen = counting(approx_token_count, additive=True)
        expected = chunk_document(doc(*MIXED_SECTIONS), target_tokens=target, count_tokens=plain)
        chunks = chunk_document(doc(*MIXED_SECTIONS), target_tokens=target, count_tokens=additive)
        assert chunks == expected
        assert all(chunk.token_count == approx_token_count(chunk.text) for chunk in chunks)
        # Nothing is counted twice, and the additive counter never sees a whole section.
        assert len(plain_seen) == len(set(plain_seen))
        assert len(additive_seen) == len(set(additive_seen)) < len(plain_seen)
        expected_by_target[target] = expected
    assert len(expected_by_target[16]) > len(expected_by_target[400]) > 1


def test_an_embedder_declares_additive_counts_on_itself():
    class Embedder:
        tokens_additive = True

        def __init__(self) -> None:
            self.texts: list[str] = []

        def count_tokens(self, text: str) -> int:
            self.texts.append(text)
            return len(text.split())

    embedder = Embedder()
    chunks = chunk_document(
        doc(Section(paragraph(0, 30))), target_tokens=60, count_tokens=embedder.count_tokens
    )

    def count_words(text: str) -> int:
        return len(text.split())

    assert chunks == chunk_document(
        doc(Section(paragraph(0, 30))), target_tokens=60, count_tokens=count_words
    )
    # Each sentence is counted once; chunks are summed from their sentences, not recounted.
    assert len(embedder.texts) == len(set(embedder.texts))
    assert not any(chunk.text in embedder.texts for chunk in chunks)
    assert all(chunk.token_count == count_words(chunk.text) for chunk in chunks)
