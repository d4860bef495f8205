"""The chat page's empty state: what a new person learns before their first question.

In-process (Django's test client, the real database); the browser twin is
tests/e2e/browser/test_first_hour_chat.py.
"""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from knowledge.models import Source
from knowledge.selectors import readable_knowledge_for
from tests.support.knowledge import SECRET_TEXT, index_text, make_collection

pytestmark = pytest.mark.django_db

KNOWLEDGE_LINK = 'href="/knowledge/"'

# Sections long enough to be passages of their own (short ones are merged under the title).
_FILLER = " ".join(
    ["Dead row versions stay on disk until a vacuum marks their space reusable."] * 12
)
VACUUM = f"""# Routine Vacuuming

## Recovering disk space
VACUUM reclaims storage occupied by dead tuples. {_FILLER}

## Updating planner statistics
ANALYZE collects statistics about the contents of tables. {_FILLER}
"""


def empty_state(client, user) -> str:
    client.force_login(user)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    html = response.content.decode()
    match = re.search(r'<section class="empty-chat".*?</section>', html, re.S)
    assert match, "the page has an empty state"
    return match.group(0)


def examples_on(section: str) -> list[str]:
    return [unescape(e) for e in re.findall(r'data-example="([^"]*)"', section)]


def test_with_no_documents_a_reader_is_told_who_can_add_them(client, make_user):
    reader = make_user()
    section = empty_state(client, reader)
    assert "No documents to answer from yet" in section
    assert "An administrator or a collection manager can add them" in section
    assert "data-example" not in section  # no travel or leave questions nothing can answer
    assert KNOWLEDGE_LINK not in section  # nothing there for them to do


def test_with_no_documents_a_collection_manager_is_sent_to_knowledge(client, make_user):
    editors = Group.objects.create(name="editors")
    make_collection("Handbook", managers=[editors])
    manager = make_user()
    manager.groups.add(editors)
    section = empty_state(client, manager)
    assert "Add a document to get started" in section
    assert KNOWLEDGE_LINK in section
    assert "data-example" not in section


def test_with_no_collection_at_all_staff_are_sent_to_knowledge(client, make_user):
    staff = make_user(is_staff=True)
    section = empty_state(client, staff)
    assert "Add a document to get started" in section and KNOWLEDGE_LINK in section


def test_a_document_still_being_indexed_is_not_yet_an_answerable_one(client, make_user, admin):
    collection = make_collection("Handbook", everyone=True)
    Source.objects.create(collection=collection, kind="file", name="travel.md", owner=admin)
    section = empty_state(client, make_user())
    assert "Your first documents are being read" in section
    assert "data-example" not in section


def test_examples_come_from_the_readers_documents(client, make_user, admin, handbook):
    collection = make_collection("Operations", everyone=True)
    index_text(collection, "vacuum.md", VACUUM, user=admin)
    section = empty_state(client, make_user())
    assert "What would you like to know?" in section
    # Newest document first, the two documents in turns, sections in reading order.
    # (The handbook's short sections are one passage under its title: a question about it.)
    assert examples_on(section) == [
        "What does “Routine Vacuuming” say about “Recovering disk space”?",
        "What is “Travel policy” about?",
        "What does “Routine Vacuuming” say about “Updating planner statistics”?",
    ]
    assert "annual leave" not in section and "IT support" not in section


def test_a_secret_collection_never_lends_its_titles_to_the_examples(client, make_user, admin):
    hr = Group.objects.create(name="hr")
    index_text(make_collection("HR", readers=[hr]), "salaries.md", SECRET_TEXT, user=admin)
    index_text(make_collection("Operations", everyone=True), "vacuum.md", VACUUM, user=admin)
    reader = make_user()
    section = empty_state(client, reader)
    assert "Routine Vacuuming" in section
    assert "Salary" not in section and "Engineering" not in section
    # With only the secret collection, they have nothing to answer from.
    Source.objects.filter(name="vacuum.md").delete()
    section = empty_state(client, reader)
    assert "No documents to answer from yet" in section and "Salary" not in section
    # Someone in HR does get them.
    member = make_user()
    member.groups.add(hr)
    assert "Salary bands" in "".join(examples_on(empty_state(client, member)))


def test_a_title_with_markup_is_shown_as_text(client, make_user, admin):
    hostile = (
        '# <img src=x onerror="alert(1)"> Plan\n\n## <script>alert(2)</script> Steps\nDo it.\n'
    )
    index_text(make_collection("Ops", everyone=True), "hostile.md", hostile, user=admin)
    section = empty_state(client, make_user())
    assert "<img" not in section and "<script" not in section
    assert any("alert(2)" in e for e in examples_on(section))


def test_the_examples_are_the_same_on_every_load(make_user, admin, handbook):
    reader = make_user()
    first = readable_knowledge_for(reader).examples
    assert first and all(readable_knowledge_for(reader).examples == first for _ in range(3))


def test_an_oversized_heading_is_cut_to_a_readable_question(make_user, admin):
    long = "Section " + "x" * 500
    text = f"# Guide\n\n## {long}\nSome words here.\n"
    index_text(make_collection("Ops", everyone=True), "guide.md", text, user=admin)
    (example,) = readable_knowledge_for(make_user()).examples
    assert len(example) < 120 and example.endswith("…”?")


def test_an_anonymous_or_inactive_person_gets_nothing(make_user, handbook):
    from django.contrib.auth.models import AnonymousUser

    for person in (AnonymousUser(), make_user(is_active=False)):
        knowledge = readable_knowledge_for(person)
        assert not knowledge.has_documents and not knowledge.can_add
        assert knowledge.examples == []


def test_the_page_costs_the_same_queries_with_one_document_or_many(
    client, make_user, admin, handbook
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    reader = make_user()
    client.force_login(reader)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("home")).status_code == 200
        return len(captured)

    one = queries()
    collection = make_collection("Operations", everyone=True)
    for i in range(5):
        index_text(
            collection, f"vacuum-{i}.md", VACUUM.replace("Routine", f"Routine {i}"), user=admin
        )
    assert queries() == one
