"""SAML settings come from the environment and fail loudly; SAML attributes become the claims
the SSO rules read (no browser, no database)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from accounts.sso import (
    CLAIMS_KEY,
    display_name,
    groups_from_claims,
    saml_claims,
    sign_in_refusal,
)
from accounts.sso_config import SAML_APP
from assistant.project.env import Env
from tests.support import processes
from tests.support.django_settings import django_settings
from tests.support.saml_idp import self_signed_pair

BASE_DIR = Path(__file__).resolve().parents[2]
# A real certificate (throwaway, self-signed): the settings check that it decodes.
CERT = self_signed_pair()[1].decode().strip()
CERT_BODY = "".join(line for line in CERT.splitlines() if "CERTIFICATE" not in line)
BY_HAND = {
    "SAML_IDP_ENTITY_ID": "https://idp.example.com/saml",
    "SAML_IDP_SSO_URL": "https://idp.example.com/saml/sso",
    "SAML_IDP_X509_CERT": CERT,
}
BY_METADATA = {"SAML_IDP_METADATA_URL": "https://idp.example.com/saml/metadata"}


def settings_for(environ: dict, *, debug: bool = False) -> dict:
    return django_settings(Env(environ), debug=debug)


def saml_app(result: dict) -> dict:
    [app] = result["SOCIALACCOUNT_PROVIDERS"]["saml"]["APPS"]
    return app


def refused(environ: dict, *, debug: bool = False) -> str:
    with pytest.raises(ImproperlyConfigured) as error:
        settings_for(environ, debug=debug)
    return str(error.value)


# --- settings ----------------------------------------------------------------------------


def test_the_saml_provider_app_is_installed_only_when_saml_is_configured():
    # Its URLs (/accounts/saml/<id>/...) exist only then; it imports xmlsec, which an
    # OIDC-only site should not depend on.
    assert settings_for(BY_METADATA)["SSO_EXTRA_APPS"] == [SAML_APP]
    assert settings_for(BY_HAND)["SSO_EXTRA_APPS"] == [SAML_APP]
    assert settings_for({})["SSO_EXTRA_APPS"] == []
    assert SAML_APP not in settings.INSTALLED_APPS  # the test process configures no SAML
    code = "from django.conf import settings; print(settings.INSTALLED_APPS[-1])"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "assistant.project.settings",
        "DEBUG": "1",
        **BY_HAND,
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + code],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == SAML_APP, result.stderr


def test_a_metadata_url_becomes_one_allauth_saml_app_that_requires_signed_assertions():
    result = settings_for(BY_METADATA)
    app = saml_app(result)
    assert (app["provider_id"], app["client_id"], app["name"]) == ("saml", "saml", "Single sign-on")
    assert app["settings"]["idp"] == {
        "metadata_url": "https://idp.example.com/saml/metadata",
        "entity_id": None,
    }
    advanced = app["settings"]["advanced"]
    assert advanced["strict"] is True
    assert advanced["want_assertion_signed"] is True
    assert advanced["reject_idp_initiated_sso"] is True
    assert app["settings"]["groups_claim"] == "groups"
    assert app["settings"]["protocol"] == "saml"
    assert "openid_connect" not in result["SOCIALACCOUNT_PROVIDERS"]
    assert result["SSO_PROVIDER_IDS"] == ["saml"]
    assert result["ACCOUNT_LOCAL_LOGIN"] is False and result["SOCIALACCOUNT_ONLY"] is True


def test_the_idp_can_be_given_by_hand_with_a_pem_or_bare_certificate():
    for cert in (CERT, CERT_BODY, CERT.replace("\n", "\\n")):
        app = saml_app(settings_for({**BY_HAND, "SAML_IDP_X509_CERT": cert}))
        assert app["settings"]["idp"] == {
            "entity_id": "https://idp.example.com/saml",
            "sso_url": "https://idp.example.com/saml/sso",
            "x509cert": CERT_BODY,
        }


def test_names_attributes_and_sp_entity_id_are_configurable():
    app = saml_app(
        settings_for(
            {
                **BY_METADATA,
                "SAML_IDP_ENTITY_ID": "https://idp.example.com/other",
                "SAML_PROVIDER_ID": "Okta",
                "SAML_PROVIDER_NAME": "Okta",
                "SAML_EMAIL_ATTRIBUTE": "user.email, mail",
                "SAML_NAME_ATTRIBUTE": "fullName",
                "SAML_GROUPS_ATTRIBUTE": "memberOf",
                "SAML_UID_ATTRIBUTE": "employeeNumber",
                "SAML_SP_ENTITY_ID": "https://assistant.example.com/saml",
            }
        )
    )
    assert (app["provider_id"], app["client_id"], app["name"]) == ("okta", "okta", "Okta")
    assert app["settings"]["idp"]["entity_id"] == "https://idp.example.com/other"
    assert app["settings"]["attribute_mapping"]["email"] == ["user.email", "mail"]
    assert app["settings"]["attribute_mapping"]["uid"] == ["employeeNumber"]
    assert app["settings"]["name_attributes"] == ["fullName"]
    assert app["settings"]["groups_claim"] == "memberOf"
    assert app["settings"]["sp"] == {"entity_id": "https://assistant.example.com/saml"}


def test_an_empty_groups_attribute_switches_group_sync_off():
    app = saml_app(settings_for({**BY_METADATA, "SAML_GROUPS_ATTRIBUTE": ""}))
    assert app["settings"]["groups_claim"] == ""


def test_saml_and_oidc_together_give_two_buttons_with_distinct_ids():
    oidc = {
        "OIDC_SERVER_URL": "https://login.example.com",
        "OIDC_CLIENT_ID": "assistant",
        "OIDC_CLIENT_SECRET": "s3cret",
    }
    result = settings_for({**oidc, **BY_METADATA})
    assert result["SSO_PROVIDER_IDS"] == ["sso", "saml"]
    assert set(result["SOCIALACCOUNT_PROVIDERS"]) == {"openid_connect", "saml"}
    assert "SAML_PROVIDER_ID" in refused({**oidc, **BY_METADATA, "SAML_PROVIDER_ID": "sso"})


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({**BY_METADATA, "SAML_IDP_SSO_URL": "https://idp.example.com/sso"}, "not both"),
        (
            {"SAML_IDP_SSO_URL": "https://idp.example.com/sso"},
            "SAML_IDP_ENTITY_ID, SAML_IDP_X509_CERT",
        ),
        ({**BY_HAND, "SAML_IDP_X509_CERT": "not a certificate"}, "SAML_IDP_X509_CERT"),
        ({**BY_HAND, "SAML_IDP_X509_CERT": "aGVsbG8="}, "SAML_IDP_X509_CERT"),
        ({"SAML_IDP_METADATA_URL": "http://idp.example.com/metadata"}, "must use https"),
        ({**BY_HAND, "SAML_IDP_SSO_URL": "ftp://idp.example.com/sso"}, "SAML_IDP_SSO_URL"),
        ({**BY_METADATA, "SAML_PROVIDER_ID": "no spaces"}, "SAML_PROVIDER_ID"),
    ],
)
def test_nonsense_is_refused_naming_the_variable(environ, named):
    assert named in refused(environ)


def test_plain_http_metadata_is_accepted_on_loopback_or_in_debug():
    settings_for({"SAML_IDP_METADATA_URL": "http://127.0.0.1:8080/metadata"})
    settings_for({"SAML_IDP_METADATA_URL": "http://idp.internal/metadata"}, debug=True)


def test_production_settings_with_saml_pass_check_deploy():
    result = processes.check_deploy_in_production(**BY_HAND)
    assert result.returncode == 0, result.stdout + result.stderr


# --- attributes to claims ----------------------------------------------------------------

APP = saml_app(settings_for(BY_METADATA))["settings"]
MAIL = "urn:oid:0.9.2342.19200300.100.1.3"
DISPLAY_NAME = "urn:oid:2.16.840.1.113730.3.1.241"
ENTRA_EMAIL = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"


def signed_in(attributes: dict, *, app_settings: dict = APP, email: str = "") -> dict:
    """extra_data as the adapter leaves it: allauth's attributes plus the mapped claims."""
    return {**attributes, CLAIMS_KEY: saml_claims(attributes, app_settings, email=email)}


def refusal(extra_data: dict, *, allowed=("example.com",), app_settings: dict = APP):
    result = sign_in_refusal(extra_data, app_settings=app_settings, allowed_domains=list(allowed))
    return result.code if result else None


def test_standard_attributes_become_email_name_and_groups():
    data = signed_in(
        {MAIL: ["ada@example.com"], DISPLAY_NAME: ["Ada Lovelace"], "groups": ["b", "a", "b"]}
    )
    assert refusal(data) is None
    assert display_name(data) == "Ada Lovelace"
    assert groups_from_claims(data, APP["groups_claim"]) == ["a", "b"]


def test_entra_style_attribute_names_are_read_too():
    data = signed_in(
        {
            ENTRA_EMAIL: ["grace@example.com"],
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname": ["Grace"],
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname": ["Hopper"],
        }
    )
    assert refusal(data) is None
    assert display_name(data) == "Grace Hopper"


def test_an_email_outside_the_allowed_domains_is_refused():
    assert refusal(signed_in({MAIL: ["mallory@evil.test"]})) == "domain"


def test_without_an_email_attribute_allauths_nameid_address_is_used_or_refused():
    assert refusal(signed_in({}, email="ada@example.com")) is None
    assert refusal(signed_in({})) == "email_missing"


def test_a_missing_groups_attribute_means_no_groups_and_off_means_no_sync():
    data = signed_in({MAIL: ["ada@example.com"]})
    assert groups_from_claims(data, "groups") == []
    assert groups_from_claims(data, "") is None


def test_entras_groups_link_instead_of_groups_is_refused_as_overage():
    data = signed_in(
        {MAIL: ["ada@example.com"], "http://schemas.microsoft.com/claims/groups.link": ["x"]}
    )
    assert refusal(data) == "groups_overage"


def test_attributes_named_like_oidc_claim_sets_are_not_read_as_claims():
    # A SAML attribute called "userinfo" is a list, never a claim set the rules would trust.
    data = signed_in({MAIL: ["ada@example.com"], "userinfo": ["{'email': 'x@evil.test'}"]})
    assert refusal(data) is None
