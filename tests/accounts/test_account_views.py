"""The sign-in page, the account page and the admin's sign-in page, in process."""

from __future__ import annotations

import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth.models import Group
from django.test import override_settings

from accounts import views
from accounts.sso import SSO_STATE_KEY

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.accounts.urls")]

PROVIDERS = {
    "openid_connect": {
        "APPS": [
            {
                "provider_id": "okta",
                "name": "Okta",
                "client_id": "a",
                "secret": "b",
                "settings": {"server_url": "https://corp.okta.example"},
            }
        ]
    }
}


@override_settings(SOCIALACCOUNT_PROVIDERS=PROVIDERS)
def test_the_sign_in_page_shows_a_button_per_provider_that_posts(client):
    html = client.get("/accounts/login/").content.decode()
    assert "Sign in with Okta" in html
    assert 'action="/accounts/oidc/okta/login/?process=login"' in html
    assert 'name="password"' in html  # local sign-in is on in tests (no SSO in the env)


def test_the_sign_in_page_without_providers_shows_only_the_password_form(client):
    html = client.get("/accounts/login/").content.decode()
    assert "sso-button" not in html
    assert 'name="login"' in html and 'name="password"' in html


def test_the_account_page_shows_identity_and_groups_marking_those_from_sso(client, make_user):
    ada = make_user(email="ada@example.com", full_name="Ada Lovelace")
    ada.groups.add(Group.objects.create(name="engineering"), Group.objects.create(name="beta"))
    SocialAccount.objects.create(
        user=ada,
        provider="sso",
        uid="ada-1",
        extra_data={SSO_STATE_KEY: {"groups": ["engineering"]}},
    )
    client.force_login(ada)
    html = client.get("/accounts/me/").content.decode()
    assert "Ada Lovelace" in html and "ada@example.com" in html
    assert '<li data-group="engineering">engineering<span class="tag"' in html
    assert '<li data-group="beta">beta</li>' in html
    assert "Knowledge you can read" not in html  # only when a higher layer passes collections


def test_the_account_page_lists_collections_a_higher_layer_passes(rf, make_user):
    request = rf.get("/accounts/me/")
    request.user = make_user()
    request.session = {}
    html = views.account(
        request, extra_context={"readable_collections": [{"name": "Handbook"}]}
    ).content.decode()
    assert "Knowledge you can read" in html and "<li>Handbook</li>" in html


def test_the_account_page_needs_a_signed_in_user(client):
    response = client.get("/accounts/me/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@override_settings(ADMIN_LOCAL_LOGIN=False)
def test_admin_sign_in_sends_people_to_single_sign_on_when_admin_local_login_is_off(
    client, make_user
):
    response = client.get("/admin/login/?next=/admin/knowledge/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2Fknowledge%2F"

    root = make_user(
        email="root@example.com", password="pw pw pw 42", is_staff=True, is_superuser=True
    )
    assert (
        client.post(
            "/admin/login/", {"username": root.email, "password": "pw pw pw 42"}
        ).status_code
        == 403
    )
    assert "_auth_user_id" not in client.session

    client.force_login(make_user())
    assert client.get("/admin/login/").status_code == 403
    client.force_login(root)
    assert client.get("/admin/login/")["Location"] == "/admin/"


@override_settings(ADMIN_LOCAL_LOGIN=True)
def test_admin_sign_in_keeps_the_password_form_when_admin_local_login_is_on(client, make_user):
    assert client.get("/admin/login/").status_code == 200
    root = make_user(
        email="root@example.com", password="pw pw pw 42", is_staff=True, is_superuser=True
    )
    response = client.post(
        "/admin/login/?next=/admin/", {"username": root.email, "password": "pw pw pw 42"}
    )
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(root.pk)


@override_settings(ACCOUNT_ALLOW_SIGNUPS=True, SSO_ALLOWED_DOMAINS=["example.com"])
def test_local_sign_up_follows_the_allowed_domains(client):
    from accounts.models import User

    password = "x very long pw 1!"
    data = {"password1": password, "password2": password}
    client.post("/accounts/signup/", {"email": "eve@evil.test", **data})
    assert not User.objects.filter(email="eve@evil.test").exists()
    client.post("/accounts/signup/", {"email": "bob@example.com", **data})
    assert User.objects.filter(email="bob@example.com").exists()
