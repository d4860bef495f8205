"""Stored XSS through the server-rendered pages: hostile file names, titles and passages are
escaped wherever a page shows them (the chat renders model output in the browser through
DOMPurify: tests/e2e/browser/test_chat.py; the Content-Security-Policy is the second wall:
test_csp.py)."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.support.knowledge import index_text, make_collection

PAYLOAD = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


@pytest.fixture
def hostile(make_user):
    admin = make_user(email="root@example.com", is_staff=True, is_superuser=True)
    collection = make_collection(f"Team {PAYLOAD}", everyone=True)
    source = index_text(
        collection, f"notes{PAYLOAD}.md", f"# Title {PAYLOAD}\n\nBody {PAYLOAD} text.", user=admin
    )
    client = Client()
    client.force_login(admin)
    return client, collection, source


def _assert_escaped(response) -> None:
    body = response.content.decode()
    assert response.status_code == 200
    assert "<script>window.__pwned" not in body
    assert 'onerror="window.__pwned' not in body


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/knowledge/",
        "/knowledge/sources/{source}/",
        "/admin/knowledge/source/",
        "/admin/knowledge/source/{source}/change/",
        "/admin/knowledge/collection/",
        "/admin/knowledge/chunk/",
        "/accounts/me/",
    ],
)
def test_hostile_names_titles_and_passages_are_escaped_on_every_page_that_shows_them(hostile, path):
    client, collection, source = hostile

    _assert_escaped(client.get(path.format(source=source.pk, collection=collection.pk)))


@pytest.mark.django_db
def test_a_hostile_memory_item_is_escaped_on_the_memory_page(make_user):
    from assistant.memory import services as memory_services

    user = make_user()
    memory_services.remember(user=user, text=f"I like {PAYLOAD}")
    client = Client()
    client.force_login(user)

    _assert_escaped(client.get("/memory/"))


@pytest.mark.django_db
def test_json_answers_are_served_as_json_never_as_html(make_user):
    """The conversation API carries raw model text: it must never be sniffed as a page."""
    from assistant.models import Conversation, Message

    user = make_user()
    conversation = Conversation.objects.create(owner=user, title=PAYLOAD)
    Message.objects.create(conversation=conversation, role="assistant", content=PAYLOAD)
    client = Client()
    client.force_login(user)

    response = client.get(f"/api/conversations/{conversation.pk}")

    assert response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"
