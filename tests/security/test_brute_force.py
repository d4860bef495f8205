"""Password guessing: the admin's password form is held to the site sign-in's limits.

``ACCOUNT_RATE_LIMITS["login_failed"]`` ("10/m/ip,5/5m/key") stops guessing at allauth's form;
the same rates, counted in the same allauth buckets, apply to ``/admin/login/`` (with
ADMIN_LOCAL_LOGIN on), so a guesser gains nothing by switching doors. Real Redis cache.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import override_settings

PASSWORD = "correct horse battery"

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("_fresh_limits"),
]


@pytest.fixture
def _fresh_limits():
    cache.clear()  # the counts live in the cache (Redis); each test starts from none
    yield
    cache.clear()


def admin_post(client, email: str, password: str):
    return client.post("/admin/login/", {"username": email, "password": password})


@override_settings(ADMIN_LOCAL_LOGIN=True)
def test_guessing_an_admins_password_is_stopped_after_five_failures_for_that_email(
    client, make_user
):
    admin = make_user(email="root@example.com", is_staff=True, is_superuser=True)
    for attempt in range(5):
        response = admin_post(client, admin.email, f"guess {attempt}")
        assert response.status_code == 200, attempt  # the form again, with its error
        assert not response.wsgi_request.user.is_authenticated
    # The sixth try is refused before the password is even checked, the right one included.
    refused = admin_post(client, admin.email, PASSWORD)
    assert refused.status_code == 429
    assert not refused.wsgi_request.user.is_authenticated
    assert client.get("/admin/").status_code == 302  # still signed out
    # The email is matched however it is written.
    assert admin_post(client, "  ROOT@Example.com ", "guess").status_code == 429


@override_settings(ADMIN_LOCAL_LOGIN=True)
def test_one_address_spraying_passwords_over_many_emails_is_stopped_after_ten_a_minute(
    client, make_user
):
    for n in range(10):
        assert admin_post(client, f"person{n}@example.com", "Winter2026!").status_code == 200
    assert admin_post(client, "person10@example.com", "Winter2026!").status_code == 429


@override_settings(ADMIN_LOCAL_LOGIN=True)
def test_the_site_sign_in_and_the_admin_sign_in_draw_on_one_budget(client, make_user):
    admin = make_user(email="root@example.com", is_staff=True, is_superuser=True)
    for attempt in range(5):
        response = client.post(
            "/accounts/login/", {"login": admin.email, "password": f"guess {attempt}"}
        )
        assert response.status_code == 200
    assert admin_post(client, admin.email, PASSWORD).status_code == 429


@override_settings(ADMIN_LOCAL_LOGIN=True)
def test_successful_admin_sign_ins_are_not_counted_as_failures(client, make_user):
    admin = make_user(email="root@example.com", is_staff=True, is_superuser=True)
    for _ in range(7):
        response = admin_post(client, admin.email, PASSWORD)
        assert response.status_code == 302
        client.logout()
    for attempt in range(5):  # the full budget of failures is still there
        assert admin_post(client, admin.email, f"guess {attempt}").status_code == 200
    assert admin_post(client, admin.email, PASSWORD).status_code == 429


@override_settings(ADMIN_LOCAL_LOGIN=True)
def test_hostile_admin_login_posts_are_counted_and_refused_not_crashed(client, make_user):
    # An oversized or missing email still counts against the address and gets a clear answer.
    assert admin_post(client, "x" * 100_000 + "@example.com", "p").status_code == 200
    assert client.post("/admin/login/", {}).status_code == 200
    assert (
        client.post("/admin/login/", {"username": ["a@example.com", "b@example.com"]}).status_code
        == 200
    )
    for n in range(7):
        admin_post(client, f"junk{n}@example.com", "p")
    assert admin_post(client, "junk@example.com", "p").status_code == 429
    # Reading the form is never limited.
    assert client.get("/admin/login/").status_code == 200
