"""An identity provider that is down: starting a sign-in shows a clear page (502), not a 500."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support import processes

pytestmark = pytest.mark.django_db(transaction=True)

DOWN = f"http://127.0.0.1:{processes.free_port()}"  # nothing listens there


@pytest.fixture(params=["saml", "oidc"])
def app(request, django_db_setup, django_db_blocker):
    env = {
        "ACCOUNT_LOCAL_LOGIN": "0",
        "DEBUG": "1",
    }  # DEBUG: an unhandled error would show its traceback
    if request.param == "saml":
        env.update(SAML_IDP_METADATA_URL=DOWN + "/saml/metadata", SAML_PROVIDER_NAME="Company SAML")
        login_path = "/accounts/saml/saml/login/"
    else:
        env.update(OIDC_SERVER_URL=DOWN, OIDC_CLIENT_ID="assistant", OIDC_CLIENT_SECRET="secret")
        login_path = "/accounts/oidc/sso/login/"
    with django_db_blocker.unblock():
        proc, port = processes.start_daphne(**env)
    yield f"http://127.0.0.1:{port}", login_path
    with django_db_blocker.unblock():
        processes.stop_and_discard_late_writes(proc)


def test_starting_a_sign_in_with_an_unreachable_provider_explains_it(app):
    base, login_path = app
    with httpx.Client(base_url=base, timeout=30) as client:
        page = client.get("/accounts/login/")
        assert page.status_code == 200
        assert login_path in page.text  # the button is there: the provider is configured
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = client.post(login_path, data={"csrfmiddlewaretoken": token})
    assert response.status_code == 502, response.text[:500]
    assert "Your identity provider could not be reached" in response.text
    assert "Traceback" not in response.text and DOWN not in response.text
