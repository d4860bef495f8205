"""The memory page's doors (issue 16): a delete asks first, an edit and a delete say what they
did, and someone else's item, a repeated delete or bad input get a clear refusal."""

from __future__ import annotations

import pytest

from assistant.memory import services as memory_services
from assistant.models import MemoryItem

pytestmark = pytest.mark.django_db


def test_delete_asks_first_and_then_says_what_was_deleted(client, make_user):
    user = make_user()
    item = memory_services.remember(user=user, text="I work nights")
    client.force_login(user)

    page = client.get(f"/memory/{item.pk}/delete").content.decode()
    assert "Delete this memory?" in page and "I work nights" in page
    assert MemoryItem.objects.filter(pk=item.pk).exists()  # asking deletes nothing

    page = client.post(f"/memory/{item.pk}/delete", follow=True).content.decode()
    assert "Deleted: “I work nights”. It won&#x27;t be used again." in page
    assert not MemoryItem.objects.filter(pk=item.pk).exists()


def test_an_edit_says_it_was_saved(client, make_user):
    user = make_user()
    item = memory_services.remember(user=user, text="I work nights")
    client.force_login(user)
    page = client.post(
        f"/memory/{item.pk}/edit", {"text": "I work early mornings"}, follow=True
    ).content.decode()
    assert "Saved: “I work early mornings”." in page


def test_someone_elses_item_cannot_be_shown_on_the_confirmation_page(client, make_user):
    alice, bob = make_user(), make_user()
    theirs = memory_services.remember(user=bob, text="Bob's private note about his health")
    client.force_login(alice)
    response = client.get(f"/memory/{theirs.pk}/delete")
    assert response.status_code == 404
    assert "health" not in response.content.decode()
    assert client.get("/memory/999999/delete").status_code == 404  # missing looks the same


def test_a_repeated_delete_is_refused_as_not_found(client, make_user):
    user = make_user()
    item = memory_services.remember(user=user, text="I work nights")
    client.force_login(user)
    assert client.post(f"/memory/{item.pk}/delete").status_code == 302
    assert client.post(f"/memory/{item.pk}/delete").status_code == 404


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x" * 301, "A memory can be at most 300 characters."),
        ("  ... !!! ", "There is nothing to remember: write a few words."),
    ],
)
def test_an_oversized_or_punctuation_only_edit_is_refused_with_a_clear_message(
    client, make_user, text, message
):
    user = make_user()
    item = memory_services.remember(user=user, text="I work nights")
    client.force_login(user)
    page = client.post(f"/memory/{item.pk}/edit", {"text": text}, follow=True).content.decode()
    assert message in page and "Saved:" not in page
    assert MemoryItem.objects.get(pk=item.pk).text == "I work nights"


def test_delete_everything_asks_first_with_the_count(client, make_user):
    user, other = make_user(), make_user()
    memory_services.remember(user=user, text="I work nights")
    memory_services.remember(user=user, text="I prefer short answers")
    memory_services.remember(user=other, text="I like hiking")
    client.force_login(user)
    page = client.get("/memory/delete-all").content.decode()
    assert "Delete everything the assistant remembers about you?" in page
    assert "2 items will be deleted." in page
    assert MemoryItem.objects.filter(owner=user).count() == 2
    page = client.post("/memory/delete-all", follow=True).content.decode()
    assert "Forgot 2 item(s)." in page
    assert not MemoryItem.objects.filter(owner=user).exists()
    assert MemoryItem.objects.filter(owner=other).exists()
