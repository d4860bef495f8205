"""manage.py evaluate --answers: every question through the chat's pipeline, answers scored.

A real database and embedder; the model is a scripted OpenAI-compatible server on 127.0.0.1
answering by question, so each figure's arithmetic can be checked by hand.
"""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from assistant.management.commands.evaluate import is_refusal
from assistant.models import Conversation, MemoryItem
from tests.support.knowledge import SECRET_QUESTION, hr_world, index_text, make_collection
from tests.support.openai_server import Reply, ScriptedOpenAI

pytestmark = pytest.mark.django_db(transaction=True)

TRAVEL = """# Travel policy

## Booking flights
Employees book flights through the travel desk at least fourteen days before departure.
Economy class is the default for flights shorter than six hours.

## Expenses
Meals abroad are reimbursed up to 60 euros per day with receipts.
"""
PRINTERS = "# Printers\n\nThe printer on floor 3 needs a badge to release print jobs.\n"

# question -> (the line in the question file, what the model answers)
SCRIPT = {
    "How do I book a flight?": (
        {"expected_sources": ["travel.md"], "answer_contains": ["travel desk", "travel office"]},
        "Book flights through the Travel Desk at least fourteen days before departure [1].",
    ),
    "How much are meals reimbursed abroad?": (
        {"expected_sources": ["travel.md"], "answer_contains": ["60 euros"]},
        "Meals abroad are reimbursed up to 80 euros per day [1].",
    ),
    "What is the office Wi-Fi password?": (
        {"unanswerable": True},
        "The knowledge does not cover the Wi-Fi password.",
    ),
    "How do I release my print jobs on floor 3?": (
        # Labelled with the wrong page on purpose: the answer cites a passage not expected.
        {"expected_sources": ["travel.md"], "answer_contains": ["badge"]},
        "The printer on floor 3 needs your badge to release print jobs [1].",
    ),
    "Which class do I fly in on a short flight?": (
        {"expected_sources": ["travel.md"], "answer_contains": ["economy"]},
        "Economy class is the default for flights shorter than six hours [1]. "
        "Managers always fly business class on long trips [1].",
    ),
    "Where do employees book their flights?": (
        {"expected_sources": ["travel.md"]},
        "I don't know.",
    ),
    "How much is the hotel budget per night when travelling for the company?": (
        {"unanswerable": True},
        "Hotels are reimbursed up to 150 euros per night when travelling [1].",
    ),
}


def scripted_reply(request):
    messages = request.body.get("messages", []) if isinstance(request.body, dict) else []
    question = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    if question in SCRIPT:
        return Reply(tokens=[SCRIPT[question][1]])
    if question == SECRET_QUESTION:
        return Reply(tokens=["The band is 123456 kroner per year [1]."])
    return Reply.error(500, f"no scripted reply for {question!r}")


@pytest.fixture
def llm(settings):
    with ScriptedOpenAI(default=scripted_reply) as server:
        settings.OPENAI_BASE_URL = server.base_url
        settings.OPENAI_API_KEY = "test"
        settings.LLM_MODEL = "scripted-model"
        settings.LLM_MAX_RETRIES = 0
        settings.LLM_TIMEOUT = 10
        yield server


@pytest.fixture
def reader(make_user):
    admin = make_user(email="admin@example.com", is_staff=True, is_superuser=True)
    staff = Group.objects.create(name="staff")
    handbook = make_collection("Handbook", readers=[staff])
    index_text(handbook, "travel.md", TRAVEL, user=admin)
    index_text(handbook, "printers.md", PRINTERS, user=admin)
    reader = make_user(email="reader@example.com")
    reader.groups.add(staff)
    return reader


def write_questions(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def evaluate(*args):
    out = io.StringIO()
    call_command("evaluate", "--answers", *map(str, args), stdout=out)
    return out.getvalue()


def test_every_figure_is_computed_from_the_answers_as_defined(tmp_path, llm, reader):
    qa = write_questions(
        tmp_path / "qa.jsonl", [{"question": q, **line} for q, (line, _) in SCRIPT.items()]
    )
    out = tmp_path / "answers.json"
    terminal = evaluate("--qa", qa, "--user", "reader@example.com", "--json", out)

    result = json.loads(out.read_text())
    assert set(result) == {"answers", "questions"}
    by_question = {q["question"]: q for q in result["questions"]}
    verdicts = {
        q: (r["correct"], r["refused"], [c["expected"] for c in r["cited_sources"]], r["cited_sentences"], len(r["unsupported"]))
        for q, r in by_question.items()
    }  # fmt: skip
    assert verdicts == {
        # correct, refused, cited passages expected?, cited sentences, unsupported
        "How do I book a flight?": (True, False, [True], 1, 0),
        "How much are meals reimbursed abroad?": (False, False, [True], 1, 1),  # says 80
        "What is the office Wi-Fi password?": (None, True, [], 0, 0),
        "How do I release my print jobs on floor 3?": (True, False, [False], 1, 0),
        "Which class do I fly in on a short flight?": (True, False, [True], 2, 1),
        "Where do employees book their flights?": (False, True, [], 0, 0),  # refused
        "How much is the hotel budget per night when travelling for the company?": (None, False, [False], 1, 1),
    }  # fmt: skip
    meals = by_question["How much are meals reimbursed abroad?"]
    assert meals["answer"] == "Meals abroad are reimbursed up to 80 euros per day [1]."
    assert meals["unsupported"][0]["reason"] == "says 80, not found in source 1"
    assert meals["cited_sources"][0]["source_name"] == "travel.md"
    assert (
        meals["status"] == "complete"
        and meals["ttft_ms"] >= 0
        and meals["total_ms"] >= meals["ttft_ms"]
    )

    figures = result["answers"]
    assert set(figures) == {
        "n", "correct", "refusal_accuracy", "citation_precision", "citation_source_recall",
        "unsupported_claims", "ttft_p50_ms", "total_p50_ms",
    }  # fmt: skip
    assert figures["n"] == 7
    assert figures["correct"] == 0.6  # 3 of 5 answerable
    assert figures["refusal_accuracy"] == round(5 / 7, 4)  # Wi-Fi refused; 4 answerable not refused
    assert figures["citation_precision"] == 0.6  # 3 of 5 cited passages from an expected source
    assert figures["citation_source_recall"] == 0.6  # 3 of 5 answerable cite an expected source
    assert figures["unsupported_claims"] == 0.5  # 3 of 6 cited sentences
    assert figures["ttft_p50_ms"] > 0 and figures["total_p50_ms"] >= figures["ttft_p50_ms"]

    # One progress line per question, then the table.
    assert terminal.count("[") >= 7 and "[7/7]" in terminal
    assert "INVENTED" in terminal and "REFUSED" in terminal and "WRONG" in terminal
    assert "citation_precision" in terminal and "0.600" in terminal

    # The chat's own pipeline: real conversations of that person, kept out of their memory.
    conversations = Conversation.objects.filter(owner=reader, origin=Conversation.Origin.CLI)
    assert conversations.count() == 7 and not conversations.filter(remember=True).exists()
    assert not MemoryItem.objects.filter(owner=reader).exists()


def test_a_question_whose_source_the_user_cannot_read_scores_as_not_cited(tmp_path, llm, make_user):
    _, hr, _, _ = hr_world(make_user)
    make_user(email="outsider@example.com")
    member = make_user(email="member@example.com")
    member.groups.add(hr)
    qa = write_questions(
        tmp_path / "qa.jsonl",
        [
            {
                "question": SECRET_QUESTION,
                "expected_sources": ["salaries.md"],
                "answer_contains": ["123456"],
            }
        ],
    )

    def run(email):
        out = tmp_path / f"{email}.json"
        evaluate("--qa", qa, "--user", email, "--json", out)
        return json.loads(out.read_text())

    allowed = run("member@example.com")
    assert allowed["questions"][0]["cites_expected_source"] is True
    assert (
        allowed["answers"]["citation_source_recall"] == 1.0 and allowed["answers"]["correct"] == 1.0
    )

    refused = run("outsider@example.com")
    question = refused["questions"][0]
    assert question["cites_expected_source"] is False and question["cited_sources"] == []
    assert question["sources_found"] == [] and "123456" not in question["answer"]
    assert question["refused"] is True
    assert len(llm.requests) == 1  # only the member's answer went to the model


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('{"expected_sources": ["a.html"]}', 'qa.jsonl:2: "question" must be a non-empty string'),
        ('{"question": "Where?"}', 'qa.jsonl:2: "expected_sources" is needed'),
        (
            '{"question": "Where?", "unanswerable": true, "expected_sources": ["a.html"]}',
            "qa.jsonl:2: an unanswerable question has no",
        ),
        ('{"question": "Where?", "expected_sources": ["a.html"]', "qa.jsonl:2: not valid JSON"),
        ('["question", "Where?"]', "qa.jsonl:2: expected a JSON object"),
        (
            '{"question": "Where?", "expected_sources": ["a.html"], "answer_contains": "x"}',
            'qa.jsonl:2: "answer_contains" must be a non-empty list',
        ),
        (
            '{"question": "Where?", "unanswerable": "yes"}',
            'qa.jsonl:2: "unanswerable" must be true or false',
        ),
        (
            '{"question": "' + "x" * 5000 + '", "expected_sources": ["a"]}',
            'qa.jsonl:2: "question" is longer',
        ),
    ],
)
def test_a_bad_line_is_refused_with_its_line_number(tmp_path, reader, lines, message):
    good = '{"question": "How do I book a flight?", "expected_sources": ["travel.md"]}'
    qa = tmp_path / "qa.jsonl"
    qa.write_text(good + "\n" + lines + "\n")
    with pytest.raises(CommandError, match=message.replace("[", r"\[").replace("?", r"\?")):
        evaluate("--qa", qa)
    assert not Conversation.objects.exists()  # nothing asked before the whole file is valid


def test_an_empty_file_a_missing_file_and_an_unknown_user_are_refused(tmp_path, reader):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(CommandError, match="holds no questions"):
        evaluate("--qa", tmp_path / "empty.jsonl")
    with pytest.raises(CommandError, match="does not exist"):
        evaluate("--qa", tmp_path / "missing.jsonl")
    qa = write_questions(tmp_path / "qa.jsonl", [{"question": "Hi?", "unanswerable": True}])
    with pytest.raises(CommandError, match="ghost@example.com"):
        evaluate("--qa", qa, "--user", "ghost@example.com")


@pytest.mark.parametrize(
    "text",
    [
        "I couldn't find anything about that in the company knowledge you have access to.",
        "The provided sources do not cover the Wi-Fi password.",
        "The documentation doesn’t mention a REPLICATION_LAG setting.",
        "That is not in the knowledge I was given.",
        "This is not covered in the passages.",
        "I don't know.",
        "I do not know which one applies.",
        "There is no information about parental leave.",
        "The sources contain no information about this.",
        "I don't have any information about that setting.",
    ],
)
def test_refusals_are_recognised(text):
    assert is_refusal(text)


@pytest.mark.parametrize(
    "text",
    [
        "Book through the travel desk [1].",
        "Set null=True; the value is not in the form then, only in the database [1].",
        "Use select_for_update() so that two requests do not change the same row [1].",
        "Knowledge of the ORM helps: use F() expressions [2].",
    ],
)
def test_answers_are_not_mistaken_for_refusals(text):
    assert not is_refusal(text)


def test_the_shipped_django_answer_set_is_valid_and_a_quarter_unanswerable():
    from pathlib import Path

    from assistant.management.commands.evaluate import load_answer_questions

    path = Path(__file__).resolve().parents[2] / "bench" / "eval" / "django_answers.jsonl"
    questions = load_answer_questions(path)
    unanswerable = [q for q in questions if q["unanswerable"]]
    assert len(questions) >= 40 and len(unanswerable) * 4 >= len(questions)
    assert all(q["answer_contains"] for q in questions if not q["unanswerable"])
    assert len({q["question"] for q in questions}) == len(questions)
