"""Open redirects: a link to our sign-in page must never bounce a person to another site after
they sign in (a phishing page that looks like ours would then get their trust)."""

from __future__ import annotations

import pytest
from django.test import override_settings


@pytest.mark.django_db
@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/phish",
        "//evil.example/phish",
        "/\\evil.example/phish",
        "https:evil.example",
        "\\\\evil.example",
        "http://127.0.0.1@evil.example/",
    ],
)
def test_sign_in_never_redirects_off_site_through_next(client, make_user, next_url):
    make_user(email="ada@example.com", password="a long passphrase 42")
    response = client.post(
        "/accounts/login/",
        {"login": "ada@example.com", "password": "a long passphrase 42", "next": next_url},
    )
    assert response.status_code == 302
    assert "evil.example" not in response["Location"]
    assert response["Location"].startswith("/")
    assert not response["Location"].startswith(("//", "/\\"))


@pytest.mark.django_db
def test_admin_sign_in_hands_next_to_the_login_page_which_then_refuses_off_site_targets(
    client, make_user
):
    make_user(email="root@example.com", password="pw pw pw 42", is_staff=True)
    with override_settings(ADMIN_LOCAL_LOGIN=False):
        hop = client.get("/admin/login/?next=https://evil.example/")
    assert hop.status_code == 302 and hop["Location"].startswith("/accounts/login/")
    done = client.post(hop["Location"], {"login": "root@example.com", "password": "pw pw pw 42"})
    assert done.status_code == 302 and "evil.example" not in done["Location"]


@pytest.mark.django_db
@override_settings(ADMIN_LOCAL_LOGIN=True)
def test_the_admin_password_form_refuses_an_off_site_next(client, make_user):
    make_user(email="root@example.com", password="pw pw pw 42", is_staff=True)
    done = client.post(
        "/admin/login/?next=https://evil.example/",
        {"username": "root@example.com", "password": "pw pw pw 42"},
    )
    assert done.status_code == 302 and "evil.example" not in done["Location"]


@pytest.mark.django_db
def test_signing_out_never_redirects_off_site_through_next(client, make_user):
    user = make_user(email="ada@example.com")
    client.force_login(user)
    response = client.post("/accounts/logout/", {"next": "https://evil.example/"})
    assert response.status_code == 302 and "evil.example" not in response["Location"]
