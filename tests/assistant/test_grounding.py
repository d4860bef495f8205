"""Every citation checked (assistant/answering/grounding.py), with the real local embedder.

Pure: no database, no Django settings. The embedder is all-MiniLM-L6-v2 as the product runs it.
"""

from __future__ import annotations

import time

import pytest

from assistant.answering import grounding
from assistant.answering.grounding import check_answer, cited_sentences, split_sentences
from knowledge.embeddings.local import LocalEmbedder

TRAVEL = """# Travel policy

## Booking flights
Employees book flights through the travel desk at least fourteen days before departure.
Economy class is the default for flights shorter than six hours.
"""
EXPENSES = """## Expenses
Meals abroad are reimbursed up to 60 euros per day with receipts.
The approval form is called "Form T-12" and goes to your manager.
"""
LOCKING = """Locking rows
Use select_for_update() on a queryset to lock the rows until the end of the transaction.
Pass nowait=True to fail instead of waiting for a lock held by another transaction.
"""
PASSAGES = {1: TRAVEL, 2: EXPENSES, 3: LOCKING}


class CountingEmbedder:
    """The real local embedder, counting its calls (the check must embed once per answer)."""

    def __init__(self, inner):
        self.inner, self.calls, self.texts = inner, 0, 0

    def embed_documents(self, texts):
        self.calls += 1
        self.texts += len(texts)
        return self.inner.embed_documents(texts)


@pytest.fixture(scope="module")
def local():
    return LocalEmbedder()


@pytest.fixture
def embedder(local):
    return CountingEmbedder(local)


def sentences(text):
    return [text[s:e] for s, e in split_sentences(text)]


def verdict(text, embedder, passages=PASSAGES):
    report = check_answer(text, passages, embedder)
    assert len(report.verdicts) == 1, report
    return report.verdicts[0]


# --- splitting ----------------------------------------------------------------------------------


def test_sentences_split_at_full_stops_but_not_in_abbreviations_decimals_or_initials():
    text = (
        "Use e.g. the desk, i.e. Travel Inc. for trips [1]. Pay 3.5 euros per km [2]. Ask J. Smith."
    )
    assert sentences(text) == [
        "Use e.g. the desk, i.e. Travel Inc. for trips [1].",
        "Pay 3.5 euros per km [2].",
        "Ask J. Smith.",
    ]


def test_list_items_and_paragraphs_are_sentences_of_their_own():
    text = "Steps:\n\n1. Open the form [1]\n2. Send it to your manager [2]\n- Keep receipts [2]\n\nDone."
    assert sentences(text) == [
        "Steps:",
        "Open the form [1]",
        "Send it to your manager [2]",
        "Keep receipts [2]",
        "Done.",
    ]


def test_markers_after_the_full_stop_stay_with_their_sentence():
    text = "Book early.[1] Meals are paid. [2][3] Then go."
    found = cited_sentences(text)
    assert [(c.text, c.numbers) for c in found] == [
        ("Book early.[1]", (1,)),
        ("Meals are paid. [2][3]", (2, 3)),
    ]


def test_code_spans_neither_split_sentences_nor_carry_markers():
    text = (
        "Call `qs.select_for_update(nowait=True). [1]` to fail fast [3].\n\n"
        "```python\nx = items[1]. y = 2. [2]\n```\n\nAlso see [1, 2]."
    )
    found = cited_sentences(text)
    assert [c.numbers for c in found] == [(3,), (1, 2)]
    assert found[0].text == "Call `qs.select_for_update(nowait=True). [1]` to fail fast [3]."
    assert found[0].claim == "Call `qs.select_for_update(nowait=True). [1]` to fail fast."


def test_a_markdown_link_is_not_a_citation():
    assert cited_sentences("Read [1](https://example.com/a) first.") == []


# --- the verdicts -------------------------------------------------------------------------------


def test_a_paraphrase_of_the_passage_is_supported(embedder):
    v = verdict("Book your flight with the travel desk two weeks ahead of departure [1].", embedder)
    assert v.supported and v.reason == ""


def test_a_number_the_passage_does_not_say_is_unsupported(embedder):
    v = verdict("Meals abroad are reimbursed up to 80 euros per day with receipts [2].", embedder)
    assert not v.supported
    assert v.reason == "says 80, not found in source 2"
    assert v.as_dict() == {
        "sentence": "Meals abroad are reimbursed up to 80 euros per day with receipts.",
        "numbers": [2],
        "reason": "says 80, not found in source 2",
    }


def test_a_number_written_as_a_word_in_the_passage_counts(embedder):
    v = verdict(
        "Book flights through the travel desk at least 14 days before departure [1].", embedder
    )
    assert v.supported, v


def test_an_identifier_the_passage_does_not_name_is_unsupported(embedder):
    v = verdict("Call select_for_share() on the queryset to lock the rows [3].", embedder)
    assert not v.supported and v.reason == "names select_for_share, not found in source 3"
    v = verdict("Pass `skip_locked=True` to fail instead of waiting [3].", embedder)
    assert not v.supported and "names skip_locked=True" in v.reason


def test_the_right_identifier_is_supported(embedder):
    v = verdict(
        "Call `select_for_update()` with nowait=True to fail instead of waiting [3].", embedder
    )
    assert v.supported, v


def test_a_quoted_name_absent_from_the_passage_is_unsupported(embedder):
    v = verdict('Send the approval form "Trip Request" to your manager [2].', embedder)
    assert not v.supported and v.reason == 'quotes "Trip Request", not found in source 2'
    assert verdict('Send the form "Form T-12" to your manager [2].', embedder).supported


def test_a_marker_pointing_at_the_wrong_passage_is_unsupported(embedder):
    # True, but passage 1 is about flights: the meal allowance is in passage 2.
    v = verdict("Meals abroad are reimbursed with receipts [1].", embedder)
    assert not v.supported and v.reason == "not found in source 1"


def test_a_sentence_citing_several_passages_is_supported_by_any_of_them(embedder):
    v = verdict("Meals abroad are reimbursed with receipts [1][2].", embedder)
    assert v.supported and v.numbers == (1, 2)
    v = verdict("Meals abroad are reimbursed with receipts [1, 3].", embedder)
    assert not v.supported
    assert v.reason == "not found in source 1; not found in source 3"


def test_one_embedding_batch_per_answer_and_none_without_citations(embedder):
    answer = (
        "Book with the travel desk [1]. Meals are reimbursed up to 60 euros [2]. "
        "Lock rows with select_for_update() [3]. Nothing cited here."
    )
    report = check_answer(answer, PASSAGES, embedder)
    assert [v.supported for v in report.verdicts] == [True, True, True]
    assert embedder.calls == 1
    check_answer("No markers at all. None.", PASSAGES, embedder)
    assert embedder.calls == 1


def test_a_sentence_with_nothing_to_check_is_supported(embedder):
    assert check_answer("See [1].", PASSAGES, embedder).verdicts[0].supported
    assert embedder.calls == 0


# --- hostile input ------------------------------------------------------------------------------


def test_ten_thousand_cited_sentences_are_checked_within_a_bound(embedder):
    answer = " ".join(f"Claim number {i} is about flights [1]." for i in range(10_000))
    started = time.monotonic()
    report = check_answer(answer, PASSAGES, embedder)
    assert time.monotonic() - started < 20
    assert len(report.verdicts) == grounding.MAX_CLAIMS
    assert report.unchecked == 10_000 - grounding.MAX_CLAIMS
    assert embedder.calls <= 1 and embedder.texts <= grounding.MAX_TEXTS


def test_an_answer_without_punctuation_is_one_sentence(embedder):
    answer = (
        "book flights through the travel desk at least fourteen days before departure [1] " * 200
    )
    report = check_answer(answer, PASSAGES, embedder)
    assert len(report.verdicts) == 1 and report.verdicts[0].numbers == (1,)


def test_only_markers_unknown_numbers_and_empty_text_are_harmless(embedder):
    assert check_answer("[1][2][3] [1, 2]", PASSAGES, embedder).unsupported == []
    assert check_answer("Flights are free [7].", PASSAGES, embedder).verdicts == []
    assert check_answer("", PASSAGES, embedder).verdicts == []
    assert check_answer("[" * 5000 + "]" * 5000, PASSAGES, embedder).verdicts == []
    assert embedder.calls == 0


def test_a_huge_passage_is_read_only_up_to_its_bound(embedder):
    huge = ("Economy class is the default for short flights. " * 20_000) + "Secret 424242."
    report = check_answer("The secret is 424242 [1].", {1: huge}, embedder)
    assert report.verdicts[0].reason == "says 424242, not found in source 1"


def test_a_long_run_of_lowercase_sentences_splits_in_linear_time():
    text = "a. b. c. " * 30_000 + "End [1]."
    started = time.monotonic()
    assert len(cited_sentences(text)) == 1
    assert time.monotonic() - started < 5


def test_a_sentence_starting_with_a_lowercase_identifier_is_a_sentence_of_its_own():
    text = "Pass nowait=True to fail [1]. skip_locked=True skips locked rows [2]. Use it e.g. here."
    assert sentences(text) == [
        "Pass nowait=True to fail [1].",
        "skip_locked=True skips locked rows [2].",
        "Use it e.g. here.",
    ]
    text = "Lock the rows.[1] select_for_update() does it."
    assert sentences(text) == ["Lock the rows.[1]", "select_for_update() does it."]


def test_a_dotted_name_counts_when_the_passage_names_its_last_part(embedder):
    v = verdict(
        "Call transaction.select_for_update() on the queryset to lock the rows [3].", embedder
    )
    assert v.supported, v
    v = verdict("Call transaction.lock_rows() on the queryset to lock the rows [3].", embedder)
    assert not v.supported and v.reason.startswith("names transaction.lock_rows")
