"""Personal access tokens on the account page, in process: the list, the create form (the token
shown once), revoking one's own, and the attacks on both forms. In a real browser (copy,
revoke): tests/e2e/browser/test_token_page.py."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from accounts.models import AccessToken
from accounts.tokens import TokenError
from knowledge.tokens import authenticate, token_create
from tests.support.knowledge import make_collection

pytestmark = pytest.mark.django_db

ACCOUNT = "/accounts/me/"
NEW = "/accounts/me/tokens/new"


def shown_token(response) -> str:
    """The token the page shows once (the read-only field's value)."""
    return response.content.decode().split('id="new-token" readonly value="')[1].split('"')[0]


def revoke_url(token: AccessToken) -> str:
    return f"/accounts/me/tokens/{token.pk}/revoke"


@pytest.fixture
def ada(make_user):
    return make_user(email="ada@example.com")


@pytest.fixture
def signed_in(client, ada):
    client.force_login(ada)
    return client


@pytest.fixture
def finance(ada):
    group = Group.objects.create(name="finance")
    ada.groups.add(group)
    return make_collection("Finance", readers=[group])


def test_the_account_page_lists_my_tokens_with_name_prefix_scope_and_dates(
    signed_in, ada, finance, make_user
):
    make_collection("Handbook", everyone=True)
    wide, _ = token_create(user=ada, name="laptop script")
    narrow, _ = token_create(user=ada, name="finance bot", collections=[finance], expires_days=30)
    theirs, _ = token_create(user=make_user(), name="someone else's")

    html = signed_in.get(ACCOUNT).content.decode()

    assert "Personal access tokens" in html
    assert "laptop script" in html and f"{wide.prefix}…" in html
    assert "Everything you can read" in html
    assert "finance bot" in html and f"{narrow.prefix}…" in html
    assert ">Finance</td>" in html
    assert "someone else's" not in html and theirs.prefix not in html
    assert html.count('class="revoke-token"') == 2


def test_creating_a_token_shows_it_once_and_it_works(signed_in, ada):
    make_collection("Handbook", everyone=True)
    response = signed_in.post(NEW, {"name": "IDE agent", "expires_days": "90"})

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    html = response.content.decode()
    token = AccessToken.objects.get(owner=ada)
    plaintext = shown_token(response)
    assert plaintext.startswith(token.prefix)
    assert "won&#x27;t be shown again" in html or "won't be shown again" in html
    assert authenticate(f"Bearer {plaintext}").user == ada
    assert token.expires_at is not None
    # Never again: the account page shows the prefix only.
    assert plaintext not in signed_in.get(ACCOUNT).content.decode()


def test_a_token_narrowed_on_the_form_reads_only_the_chosen_collections(signed_in, ada, finance):
    make_collection("Handbook", everyone=True)
    response = signed_in.post(
        NEW, {"name": "finance only", "expires_days": "", "collections": [str(finance.pk)]}
    )
    plaintext = shown_token(response)
    auth = authenticate(f"Bearer {plaintext}")
    assert auth.collection_ids == {finance.pk}
    assert AccessToken.objects.get(owner=ada).expires_at is None


def test_a_narrowing_to_a_collection_i_cannot_read_is_refused(signed_in, ada, make_user):
    hr = Group.objects.create(name="hr")
    secret = make_collection("HR", readers=[hr])
    response = signed_in.post(NEW, {"name": "sneaky", "collections": [str(secret.pk)]}, follow=True)
    html = response.content.decode()
    assert "No token was created" in html and "collections you can read" in html
    assert not AccessToken.objects.exists()
    # Refused the same way as an id that does not exist: nothing says HR is there.
    missing = signed_in.post(NEW, {"name": "x", "collections": ["999999"]}, follow=True)
    assert missing.content.decode().count("collections you can read") == html.count(
        "collections you can read"
    )


@pytest.mark.parametrize(
    "form",
    [
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 101},
        {"name": "x", "expires_days": "0"},
        {"name": "x", "expires_days": "-5"},
        {"name": "x", "expires_days": "99999999999"},
        {"name": "x", "expires_days": "soon"},
        {"name": "x", "collections": ["1; DROP TABLE"]},
        {"name": "x", "collections": [str(i) for i in range(500)]},
        # Digits to str.isdigit, not to int(): a forged form, not a server error.
        {"name": "x", "expires_days": "\u00b2"},
        {"name": "x", "collections": ["\u2460"]},
    ],
)
def test_a_bad_form_is_refused_with_a_message_and_no_token(signed_in, form):
    response = signed_in.post(NEW, form, follow=True)
    assert response.status_code == 200
    assert "No token was created" in response.content.decode()
    assert not AccessToken.objects.exists()


def test_revoking_my_token_stops_it_at_once(signed_in, ada):
    token, plaintext = token_create(user=ada, name="old script")
    response = signed_in.post(revoke_url(token), follow=True)
    assert "is revoked" in response.content.decode()
    with pytest.raises(TokenError) as refused:
        authenticate(f"Bearer {plaintext}")
    assert refused.value.reason == "revoked"
    html = response.content.decode()
    assert 'class="tag">Revoked<' in html and 'class="revoke-token"' not in html


@pytest.mark.parametrize("staff", [False, True])
def test_someone_elses_token_id_is_404_and_nothing_is_revoked(client, make_user, staff):
    owner = make_user(email="owner@example.com")
    token, plaintext = token_create(user=owner, name="theirs")
    # Staff revoke other people's tokens in the admin, never through this page.
    intruder = make_user(email="intruder@example.com", is_staff=staff)
    client.force_login(intruder)

    assert client.post(revoke_url(token)).status_code == 404
    assert client.post("/accounts/me/tokens/999999/revoke").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
    assert authenticate(f"Bearer {plaintext}").user == owner


def test_the_forms_refuse_a_cross_site_post_without_the_csrf_token(ada):
    token, _ = token_create(user=ada, name="keep me")
    forged = Client(enforce_csrf_checks=True)
    forged.force_login(ada)
    assert forged.post(NEW, {"name": "attacker's"}).status_code == 403
    assert forged.post(revoke_url(token)).status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None
    assert AccessToken.objects.count() == 1


def test_the_forms_take_only_posts(signed_in, ada):
    token, _ = token_create(user=ada, name="x")
    assert signed_in.get(NEW).status_code == 405
    assert signed_in.get(revoke_url(token)).status_code == 405


def test_signed_out_the_forms_go_to_sign_in_and_do_nothing(client, ada):
    token, _ = token_create(user=ada, name="x")
    response = client.post(revoke_url(token))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    token.refresh_from_db()
    assert token.revoked_at is None
