import json
import logging

import pytest

from assistant.project.observability import JsonFormatter, RequestIdFilter


@pytest.mark.django_db
def test_every_page_requires_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_login_page_is_served_with_the_app_shell(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="login"' in html and 'name="password"' in html
    assert "/static/css/app.css" in html


@pytest.mark.django_db
def test_user_logs_in_with_email_and_password_and_sees_the_shell(client, make_user):
    make_user(email="ada@example.com", password="a long passphrase 42")
    response = client.post(
        "/accounts/login/", {"login": "ada@example.com", "password": "a long passphrase 42"}
    )
    assert response.status_code == 302
    page = client.get("/").content.decode()
    assert "ada@example.com" in page
    assert ">Chat<" in page
    assert "/admin/" not in page  # not staff


@pytest.mark.django_db
def test_wrong_password_is_refused(client, make_user):
    make_user(email="ada@example.com", password="a long passphrase 42")
    response = client.post("/accounts/login/", {"login": "ada@example.com", "password": "nope"})
    assert response.status_code == 200
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_staff_see_the_admin_link_and_can_open_the_admin(client, make_user):
    staff = make_user(email="root@example.com", is_staff=True, is_superuser=True)
    client.force_login(staff)
    assert "/admin/" in client.get("/").content.decode()
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_non_staff_cannot_open_the_admin(client, make_user):
    client.force_login(make_user())
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.django_db
def test_sign_up_is_closed_by_default(client):
    response = client.post(
        "/accounts/signup/",
        {
            "email": "eve@example.com",
            "password1": "x very long pw 1!",
            "password2": "x very long pw 1!",
        },
    )
    from accounts.models import User

    assert not User.objects.filter(email="eve@example.com").exists()
    assert response.status_code in (200, 302)


@pytest.mark.django_db
def test_requests_get_an_id_in_the_header_and_in_the_log(client, caplog):
    caplog.set_level(logging.INFO, logger="assistant.access")
    response = client.get("/accounts/login/", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"
    record = next(r for r in caplog.records if r.name == "assistant.access")
    RequestIdFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "abc-123"
    assert line["path"] == "/accounts/login/" and line["status"] == 200
    assert line["msg"] == "request"


@pytest.mark.django_db
def test_a_hostile_request_id_is_replaced(client):
    response = client.get("/accounts/login/", HTTP_X_REQUEST_ID="<script>" + "x" * 100)
    assert response["X-Request-ID"] != "<script>" + "x" * 100
    assert len(response["X-Request-ID"]) == 32
