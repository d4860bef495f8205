"""Prompts shaped for small local models: a fixed, cacheable prefix, a citing example, budgets."""

from __future__ import annotations

import os

from assistant.answering import prompts
from assistant.llm import ChatMessage, count_tokens
from knowledge.retrieval import SearchHit

EXAMPLE = "Invoices are paid within 30 days of receipt [2]."


def hit(n: int, text: str, *, before: str = "", after: str = "") -> SearchHit:
    return SearchHit(
        chunk_id=n,
        source_id=n,
        collection_id=1,
        ordinal=0,
        text=text,
        heading_path=[f"Section {n}"],
        page=None,
        document_title=f"Handbook {n}",
        source_name=f"handbook-{n}.md",
        source_url="",
        score=1.0 / n,
        before=before,
        after=after,
    )


def system_prompt(**kwargs) -> str:
    messages = prompts.build_messages(history=[], **kwargs)
    assert messages[0].role == "system"
    return messages[0].content


def test_the_fixed_rules_and_example_are_a_byte_identical_prefix_for_every_question_and_person():
    """llama.cpp reuses the longest prefix it has already read: anything that varies
    (a name, memory, quoted context, sources) before the rules would make every question
    pay for the rules again."""
    alice = system_prompt(
        question="When are invoices paid?",
        sources=prompts.number_sources([hit(1, "Invoices are paid monthly.")], 500),
        user_name="Alice",
        memory=["Alice works in Berlin."],
    )
    bob = system_prompt(
        question="How do I book travel?",
        sources=prompts.number_sources([hit(1, "Travel is booked in the portal.")], 500),
        user_name="Bob",
        thread_context=[("Carol", "what about trains?")],
    )
    nobody = system_prompt(question="Hello?", sources=[])

    shared = os.path.commonprefix([alice, bob, nobody])
    assert shared.startswith("You are the company's internal assistant.")
    assert EXAMPLE in shared  # the rules and the example are all in the shared part
    for prompt, private in ((alice, "Alice"), (bob, "Bob"), (alice, "Berlin"), (bob, "Carol")):
        assert prompt.index(private) >= len(shared)
    assert alice.index("Sources:") > alice.index(EXAMPLE)


def test_the_prompt_shows_one_short_citing_example():
    prompt = system_prompt(question="q", sources=[])

    example_lines = [line for line in prompt.splitlines() if line.startswith("Example:")]
    assert len(example_lines) == 1
    assert example_lines[0].endswith(EXAMPLE)
    assert count_tokens(example_lines[0]) < 60


def test_the_citing_instruction_is_repeated_last_next_to_the_question():
    """Small models follow what they read last: without this line Qwen 1.5B answered right
    but with no [n] marker (tests/e2e/test_default_model.py)."""
    sources = prompts.number_sources([hit(1, "Staff may work remotely two days a week.")], 500)

    prompt = system_prompt(question="How often may I work remotely?", sources=sources)

    last = prompt.splitlines()[-1]
    assert last.startswith("Answer only from the sources above")
    assert "square brackets, like [1]" in last and "does not cover it" in last
    assert prompt.index("two days a week") < prompt.index(last)


def test_sources_stay_within_the_budget_and_are_numbered_best_first():
    hits = [hit(n, f"Policy {n}: " + "details of the rule " * 40) for n in range(1, 9)]
    budget = 600

    sources = prompts.number_sources(hits, budget)

    assert [s["n"] for s in sources] == list(range(1, len(sources) + 1))
    assert 1 < len(sources) < len(hits)
    used = sum(
        count_tokens(s.get("context", s["text"])) + prompts.SOURCE_HEADER_TOKENS for s in sources
    )
    assert used <= budget


def test_an_oversized_first_passage_is_cut_to_the_budget_not_sent_whole():
    """A single huge chunk used to go in whole, past the budget and the model's window."""
    huge = "Refunds are processed by the finance team within ten days. " * 400
    budget = 300

    sources = prompts.number_sources([hit(1, huge), hit(2, "Short one.")], budget)

    assert [s["n"] for s in sources] == [1]
    text = sources[0]["text"]
    assert text.startswith("Refunds are processed by the finance team")
    assert count_tokens(text) + prompts.SOURCE_HEADER_TOKENS <= budget
    assert len(text) > 500  # cut to fit, not dropped


def test_neighbours_widen_passages_only_within_the_budget():
    hits = [hit(1, "The core rule.", before="Context before. " * 5, after="Context after. " * 5)]

    wide = prompts.number_sources(hits, 500)
    narrow = prompts.number_sources(hits, 40)

    assert "Context before." in wide[0]["context"] and "Context after." in wide[0]["context"]
    assert "context" not in narrow[0]
    assert "context" not in prompts.public_sources(wide)[0]


def test_a_neighbour_that_is_also_a_source_is_not_sent_twice():
    """Adjacent chunks retrieved together used to be repeated as each other's context."""
    one, two, three = "Policy one text.", "Policy two text.", "Policy three text."
    hits = [
        hit(1, two, before=one, after=three),
        hit(2, three, before=two),
        hit(3, one, after=two),
    ]

    sources = prompts.number_sources(hits, 1000)
    prompt = system_prompt(question="q", sources=sources)

    assert [prompt.count(text) for text in (one, two, three)] == [1, 1, 1]
    assert [s["text"] for s in sources] == [two, three, one]


def test_the_budget_leaves_room_for_the_answer_and_the_fixed_rules():
    budget = prompts.Budget(context_tokens=2048, answer_tokens=768)
    fixed = prompts.fixed_prompt_tokens()

    assert 100 < fixed < 400
    assert budget.sources_tokens + budget.history_tokens + fixed <= 2048 - 768


def test_history_is_trimmed_to_the_most_recent_turns_keeping_the_summary():
    summary = ChatMessage("system", "Summary of the earlier conversation: travel questions.")
    turns = [summary] + [
        ChatMessage("user" if i % 2 == 0 else "assistant", f"turn {i} " + "word " * 50)
        for i in range(10)
    ]

    kept = prompts.trim_history(turns, 200)

    assert kept[0] == summary
    assert kept[-1].content.startswith("turn 9")
    assert "turn 0 " not in " ".join(t.content for t in kept)
    assert sum(count_tokens(t.content) + 4 for t in kept) <= 200
