"""The default local model, for real: a cited answer from the knowledge, and a refusal.

The one test run against Qwen2.5-Coder-1.5B-Instruct (every other test keeps SmolLM2): its
server is started by the launcher's own code (``localmodel.server_argv``), the question goes
through the real pipeline (retrieval in PostgreSQL, the prompt templates, streaming, citation
parsing). About a minute on two cores, most of it the model reading the prompt.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings

from assistant import llm, services
from assistant.answering.pipeline import answer_stream
from assistant.devstack import localmodel
from tests.support.knowledge import index_text, make_collection
from tests.support.processes import free_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Each policy is long enough to be a passage of its own (the chunker merges tiny sections).
POLICIES = """# Staff policies

## Policy 1: Booking travel
Employees book all business trips through the travel desk at least fourteen days before
departure. Economy class is the default for every flight. Hotel rooms are booked by the travel
desk together with the flight.

## Policy 2: Meal expenses
Meals during business trips are reimbursed up to 60 euros per day, with receipts, through the
expenses portal within one month of the trip. Alcohol is never reimbursed.

## Policy 3: Remote work
Staff may work remotely for up to two days per week. Each remote day is agreed with the team
lead one week in advance. Remote days cannot be carried over to the next week.

## Policy 4: Lost badges
A lost security badge must be reported to the facilities team within 24 hours, so that the
badge can be blocked and replaced. A replacement badge costs nothing the first time.
"""

REFUSAL = re.compile(
    r"(does not|doesn't|do not|don't|cannot|can't|not) (cover|contain|mention|include|"
    r"provide|have|find|know|say|specify)|no information|not (found|available|mentioned)|"
    r"couldn't find",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def default_model() -> Iterator[llm.LLMConfig]:
    """Qwen behind llama.cpp's server, started as the launcher starts it."""
    model = localmodel.choose("qwen2.5-coder-1.5b")
    port = free_port()
    argv = localmodel.server_argv("127.0.0.1", port, model=model)
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, f"the model server exited with {process.returncode}"
            try:
                httpx.get(f"{base_url}/models", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the model server never served"
                time.sleep(0.3)
        # Deterministic decoding; a short answer; patience for a slow first token on 2 cores.
        yield llm.LLMConfig(
            base_url=base_url,
            api_key="local",
            model=model.alias,
            temperature=0,
            max_tokens=120,
            read_timeout=240,
            max_retries=0,
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def staff(make_user):
    admin = make_user(email="admin@example.com", is_staff=True, is_superuser=True)
    # Small chunks: one passage per policy, so the citation must pick the right one.
    with override_settings(CHUNK_TARGET_TOKENS=40, CHUNK_OVERLAP_TOKENS=0):
        source = index_text(
            make_collection("Policies", everyone=True), "policies.md", POLICIES, user=admin
        )
    assert source.chunks.count() >= 4
    return make_user(email="reader@example.com")


async def ask(user, text: str, config: llm.LLMConfig) -> list:
    question = await sync_to_async(services.question_create)(
        user=user, conversation=None, text=text
    )
    with override_settings(LLM_CONTEXT_TOKENS=localmodel.QWEN.context_tokens):
        return [e async for e in answer_stream(user=user, question=question, config=config)]


async def test_the_default_model_answers_from_the_right_passage_and_cites_it(staff, default_model):
    events = await ask(staff, "How many days per week may staff work remotely?", default_model)

    done = events[-1]
    assert done.type == "done", events[-1]
    answer = done.message["content"]
    print(f"\nanswer: {answer!r}\ntimings: {done.timings}")
    assert re.search(r"\b(two|2)\b", answer, re.IGNORECASE), answer
    cited = [e for e in events if e.type == "citation"]
    assert cited, f"no [n] marker in {answer!r}"
    # Only the remote-work passage answers it: every marker must point there.
    assert all(
        "work remotely for up to two days" in " ".join(e.source["text"].split()) for e in cited
    )


async def test_an_unanswerable_question_gets_a_not_in_the_knowledge_answer_without_citations(
    staff, default_model
):
    """Answered here by the similarity floor (nothing relevant: the model is not asked) or by
    the model refusing. A question close to a passage but not answered by it (parental leave,
    next to the remote-work policy) was still answered by inventing on this model: the
    citation check of issue 12 section 3 is what catches that."""
    events = await ask(staff, "What is the password of the guest Wi-Fi network?", default_model)

    done = events[-1]
    assert done.type == "done", events[-1]
    answer = done.message["content"]
    print(f"\nanswer: {answer!r}\ntimings: {done.timings}")
    assert REFUSAL.search(answer), answer
    assert [e for e in events if e.type == "citation"] == []
