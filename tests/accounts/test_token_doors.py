"""The doors around tokens: a Django view behind ``token_required``, the ``create_token``
command, and the admin's list and "Revoke" action."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.models import AccessToken, AuditEvent
from knowledge.tokens import authenticate, token_create
from tests.support.knowledge import make_collection

pytestmark = pytest.mark.django_db
WHOAMI = "/token-test/whoami"


@pytest.fixture
def ada(make_user):
    return make_user(email="ada@example.com")


# --- token_required --------------------------------------------------------------------------


@pytest.mark.urls("tests.accounts.token_urls")
def test_a_view_behind_the_decorator_sees_the_owner_and_scope(client, ada):
    open_ = make_collection("Open", everyone=True)
    token, plaintext = token_create(user=ada, name="x")
    response = client.get(WHOAMI, headers={"Authorization": f"Bearer {plaintext}"})
    assert response.status_code == 200
    assert response.json() == {
        "email": "ada@example.com",
        "prefix": token.prefix,
        "collections": [open_.pk],
    }


@pytest.mark.urls("tests.accounts.token_urls")
@pytest.mark.parametrize(
    ("header", "code"),
    [(None, "missing"), ("Bearer nope", "malformed"), ("Bearer ast_" + "a" * 43, "invalid")],
)
def test_a_refused_token_gets_a_json_401_never_a_sign_in_redirect(client, ada, header, code):
    headers = {"Authorization": header} if header else {}
    response = client.get(WHOAMI, headers=headers)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"].startswith("Bearer ")
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


@pytest.mark.urls("tests.accounts.token_urls")
def test_a_revoked_token_gets_401_revoked(client, ada):
    token, plaintext = token_create(user=ada, name="x")
    AccessToken.objects.filter(pk=token.pk).update(revoked_at=token.created_at)
    response = client.post(WHOAMI, headers={"Authorization": f"Bearer {plaintext}"})
    assert response.status_code == 401 and response.json()["error"]["code"] == "revoked"
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


@pytest.mark.urls("tests.accounts.token_urls")
@pytest.mark.parametrize("param", ["token", "access_token", "api_key", "q"])
def test_a_token_in_the_query_string_is_refused_even_beside_a_good_header(client, ada, param):
    _, plaintext = token_create(user=ada, name="x")
    response = client.get(
        WHOAMI, {param: plaintext}, headers={"Authorization": f"Bearer {plaintext}"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "token_in_query"
    # And on its own, of course, it authenticates nothing.
    assert client.get(WHOAMI, {param: plaintext}).status_code == 400


@pytest.mark.urls("tests.accounts.token_urls")
def test_an_ordinary_query_is_not_mistaken_for_a_token(client, ada):
    _, plaintext = token_create(user=ada, name="x")
    response = client.get(
        WHOAMI,
        {"q": "east_coast_offices_and_more"},
        headers={"Authorization": f"Bearer {plaintext}"},
    )
    assert response.status_code == 200


@pytest.mark.urls("tests.accounts.token_urls")
def test_a_session_cookie_is_no_substitute_for_a_token(client, ada):
    client.force_login(ada)
    response = client.get(WHOAMI)
    assert response.status_code == 401 and response.json()["error"]["code"] == "missing"


@pytest.mark.urls("tests.accounts.token_urls")
def test_a_post_needs_no_csrf_token_since_no_cookie_authenticates_it(ada):
    from django.test import Client

    _, plaintext = token_create(user=ada, name="x")
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(WHOAMI, headers={"Authorization": f"Bearer {plaintext}"})
    assert response.status_code == 200


@pytest.mark.urls("tests.accounts.token_urls")
def test_a_10_kb_authorization_header_gets_a_clear_401(client, ada):
    response = client.get(WHOAMI, headers={"Authorization": "Bearer " + "A" * 10_240})
    assert response.status_code == 401 and response.json()["error"]["code"] == "malformed"


# --- create_token ------------------------------------------------------------------------------


def run(*args) -> str:
    out = StringIO()
    call_command("create_token", *args, stdout=out)
    return out.getvalue()


def test_the_command_prints_a_working_token_once(ada):
    output = run("ada@example.com", "--name", "nightly export")
    line = next(line.strip() for line in output.splitlines() if line.strip().startswith("ast_"))
    assert authenticate(f"Bearer {line}").user == ada
    assert "shown once" in output and "Expires: never" in output
    token = AccessToken.objects.get()
    assert token.name == "nightly export" and not token.narrowed


def test_the_command_narrows_by_collection_names_and_sets_an_expiry(ada):
    make_collection("Open", everyone=True)
    make_collection("Also open", everyone=True)
    output = run(
        "ADA@example.com", "--name", "n", "--collections", "Open, Also open", "--expires-days", "7"
    )
    token = AccessToken.objects.get()
    assert token.narrowed and token.expires_at is not None
    assert sorted(token.collections.values_list("name", flat=True)) == ["Also open", "Open"]
    assert "Scope: Also open, Open." in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody@example.com", "--name", "n"], "No active account"),
        (["ada@example.com", "--name", "  "], "Give the token a name"),
        (["ada@example.com", "--name", "n", "--collections", "Secret"], "'Secret'"),
        (["ada@example.com", "--name", "n", "--expires-days", "0"], "1 to 3650 days"),
    ],
)
def test_the_command_refuses_bad_input_clearly_and_creates_nothing(ada, args, message):
    make_collection("Secret")  # groups only, and Ada is in none
    with pytest.raises(CommandError, match=message):
        call_command("create_token", *args, stdout=StringIO())
    assert not AccessToken.objects.exists()


def test_the_command_exits_non_zero_on_bad_input(ada, capsys):
    from django.core.management import ManagementUtility

    with pytest.raises(SystemExit) as exited:
        ManagementUtility(["manage.py", "create_token", "x@example.com", "--name", "n"]).execute()
    assert exited.value.code == 1
    captured = capsys.readouterr()
    assert "No active account has the address 'x@example.com'" in captured.err
    assert "ast_" not in captured.out


# --- admin ------------------------------------------------------------------------------------


def test_the_admin_lists_tokens_without_any_secret_and_revokes_them(client, admin, ada):
    secret_collection = make_collection("Ledgers", everyone=True)
    token, plaintext = token_create(user=ada, name="laptop", collections=[secret_collection])
    client.force_login(admin)
    changelist = reverse("admin:accounts_accesstoken_changelist")
    page = client.get(changelist)
    assert page.status_code == 200
    html = page.content.decode()
    assert token.prefix in html and "ada@example.com" in html and "Ledgers" in html
    assert plaintext not in html and token.secret_hash not in html
    detail = client.get(reverse("admin:accounts_accesstoken_change", args=[token.pk]))
    assert token.secret_hash not in detail.content.decode()

    response = client.post(
        changelist, {"action": "revoke", "_selected_action": [token.pk]}, follow=True
    )
    assert response.status_code == 200 and "1 token(s) revoked" in response.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is not None
    event = AuditEvent.objects.get(action=AuditEvent.Action.TOKEN_REVOKED)
    assert event.actor == admin and event.subject == ada


def test_the_admin_cannot_add_or_delete_tokens(client, admin, ada):
    token_create(user=ada, name="x")
    client.force_login(admin)
    assert client.get(reverse("admin:accounts_accesstoken_add")).status_code == 403
    page = client.get(reverse("admin:accounts_accesstoken_changelist")).content.decode()
    assert "delete_selected" not in page
