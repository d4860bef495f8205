"""SSO settings come from the environment and fail loudly, naming the variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from assistant.project.env import Env
from tests.support import processes
from tests.support.django_settings import django_settings

BASE_DIR = Path(__file__).resolve().parents[2]
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SINGLE = {
    "OIDC_SERVER_URL": "https://idp.example.com",
    "OIDC_CLIENT_ID": "assistant",
    "OIDC_CLIENT_SECRET": "s3cret",
}


def settings_for(environ: dict, *, debug: bool = False) -> dict:
    return django_settings(Env(environ), debug=debug)


def apps(result: dict) -> list[dict]:
    return result["SOCIALACCOUNT_PROVIDERS"]["openid_connect"]["APPS"]


def refused(environ: dict, *, debug: bool = False) -> str:
    with pytest.raises(ImproperlyConfigured) as error:
        settings_for(environ, debug=debug)
    return str(error.value)


def test_without_a_provider_only_local_sign_in_is_on():
    result = settings_for({})
    assert result["SOCIALACCOUNT_PROVIDERS"] == {}
    assert result["ACCOUNT_LOCAL_LOGIN"] is True
    assert result["SOCIALACCOUNT_ONLY"] is False
    assert result["ADMIN_LOCAL_LOGIN"] is True


def test_a_single_provider_becomes_one_allauth_app_with_defaults():
    result = settings_for(SINGLE)
    [app] = apps(result)
    assert app["provider_id"] == "sso"
    assert app["name"] == "Single sign-on"
    assert app["client_id"] == "assistant" and app["secret"] == "s3cret"
    assert app["settings"]["server_url"] == "https://idp.example.com"
    assert app["settings"]["scope"] == ["openid", "profile", "email"]
    assert app["settings"]["oauth_pkce_enabled"] is True
    assert app["settings"]["groups_claim"] == "groups"
    assert result["SOCIALACCOUNT_ADAPTER"] == "accounts.adapters.SocialAccountAdapter"
    assert result["SSO_PROVIDER_IDS"] == ["sso"]


def test_local_sign_in_defaults_off_with_sso_in_production_and_on_in_debug():
    assert settings_for(SINGLE)["ACCOUNT_LOCAL_LOGIN"] is False
    assert settings_for(SINGLE)["SOCIALACCOUNT_ONLY"] is True
    assert settings_for(SINGLE)["ADMIN_LOCAL_LOGIN"] is False
    assert settings_for(SINGLE, debug=True)["ACCOUNT_LOCAL_LOGIN"] is True


def test_local_and_admin_sign_in_can_be_switched_separately():
    result = settings_for({**SINGLE, "ACCOUNT_LOCAL_LOGIN": "0", "ADMIN_LOCAL_LOGIN": "1"})
    assert result["SOCIALACCOUNT_ONLY"] is True
    assert result["ADMIN_LOCAL_LOGIN"] is True
    assert settings_for({**SINGLE, "ACCOUNT_LOCAL_LOGIN": "1"})["SOCIALACCOUNT_ONLY"] is False


def test_turning_off_local_sign_in_without_a_provider_is_refused():
    assert "ACCOUNT_LOCAL_LOGIN" in refused({"ACCOUNT_LOCAL_LOGIN": "0"})


def test_scopes_name_groups_claim_and_label_are_configurable():
    result = settings_for(
        {
            **SINGLE,
            "OIDC_SCOPES": "openid profile email groups",
            "OIDC_GROUPS_CLAIM": "roles",
            "OIDC_PROVIDER_NAME": "Okta",
            "OIDC_PROVIDER_ID": "okta",
        }
    )
    [app] = apps(result)
    assert app["settings"]["scope"] == ["openid", "profile", "email", "groups"]
    assert app["settings"]["groups_claim"] == "roles"
    assert (app["name"], app["provider_id"]) == ("Okta", "okta")


def test_an_empty_groups_claim_switches_group_sync_off():
    [app] = apps(settings_for({**SINGLE, "OIDC_GROUPS_CLAIM": ""}))
    assert app["settings"]["groups_claim"] == ""


def test_entra_tenant_derives_the_issuer_and_is_kept_for_the_tid_check():
    [app] = apps(
        settings_for(
            {"OIDC_ENTRA_TENANT_ID": TENANT, "OIDC_CLIENT_ID": "a", "OIDC_CLIENT_SECRET": "b"}
        )
    )
    assert app["settings"]["server_url"] == f"https://login.microsoftonline.com/{TENANT}/v2.0"
    assert app["settings"]["tenant_id"] == TENANT


def test_google_hosted_domain_is_sent_as_hd_and_kept_for_the_check():
    [app] = apps(
        settings_for(
            {
                "OIDC_GOOGLE_HOSTED_DOMAIN": "Example.com",
                "OIDC_CLIENT_ID": "a",
                "OIDC_CLIENT_SECRET": "b",
            }
        )
    )
    assert app["settings"]["server_url"] == "https://accounts.google.com"
    assert app["settings"]["auth_params"] == {"hd": "example.com"}
    assert app["settings"]["hosted_domain"] == "example.com"


def test_domains_and_group_lists_are_read():
    result = settings_for(
        {
            **SINGLE,
            "SSO_ALLOWED_DOMAINS": "Example.com, @corp.example",
            "SSO_STAFF_GROUPS": "staff,knowledge",
            "SSO_ADMIN_GROUPS": "it-admins",
        }
    )
    assert result["SSO_ALLOWED_DOMAINS"] == ["example.com", "corp.example"]
    assert result["SSO_STAFF_GROUPS"] == ["staff", "knowledge"]
    assert result["SSO_ADMIN_GROUPS"] == ["it-admins"]


def test_several_providers_from_json():
    providers = [
        {
            "id": "okta",
            "name": "Okta",
            "server_url": "https://corp.okta.com",
            "client_id": "a",
            "client_secret": "b",
            "scopes": ["openid", "email", "profile", "groups"],
        },
        {
            "id": "entra",
            "name": "Microsoft",
            "tenant_id": TENANT,
            "client_id": "c",
            "client_secret": "d",
            "groups_claim": "roles",
            "allowed_domains": ["subsidiary.example"],
            "idp_logout": False,
        },
    ]
    okta, entra = apps(settings_for({"OIDC_PROVIDERS": json.dumps(providers)}))
    assert okta["provider_id"] == "okta" and okta["settings"]["scope"][-1] == "groups"
    assert entra["settings"]["server_url"].startswith("https://login.microsoftonline.com/")
    assert entra["settings"]["allowed_domains"] == ["subsidiary.example"]
    assert entra["settings"]["idp_logout"] is False
    assert entra["settings"]["groups_claim"] == "roles"


def test_the_json_form_also_takes_the_single_provider_names():
    providers = [
        {
            "provider_id": "entra",
            "provider_name": "Microsoft",
            "entra_tenant_id": TENANT,
            "client_id": "a",
            "client_secret": "b",
        }
    ]
    [app] = apps(settings_for({"OIDC_PROVIDERS": json.dumps(providers)}))
    assert (app["provider_id"], app["name"], app["settings"]["tenant_id"]) == (
        "entra",
        "Microsoft",
        TENANT,
    )


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        (
            {"OIDC_SERVER_URL": "https://idp.example.com", "OIDC_CLIENT_SECRET": "x"},
            "OIDC_CLIENT_ID",
        ),
        (
            {"OIDC_SERVER_URL": "https://idp.example.com", "OIDC_CLIENT_ID": "x"},
            "OIDC_CLIENT_SECRET",
        ),
        ({"OIDC_CLIENT_ID": "x", "OIDC_CLIENT_SECRET": "y"}, "OIDC_SERVER_URL"),
        ({**SINGLE, "OIDC_SERVER_URL": "idp.example.com"}, "OIDC_SERVER_URL"),
        ({**SINGLE, "OIDC_SERVER_URL": "http://idp.example.com"}, "OIDC_SERVER_URL"),
        ({**SINGLE, "OIDC_SCOPES": "profile email"}, "OIDC_SCOPES"),
        ({**SINGLE, "OIDC_PROVIDER_ID": "My SSO"}, "OIDC_PROVIDER_ID"),
        ({**SINGLE, "OIDC_ENTRA_TENANT_ID": "contoso.onmicrosoft.com"}, "OIDC_ENTRA_TENANT_ID"),
        ({**SINGLE, "OIDC_GOOGLE_HOSTED_DOMAIN": "not a domain"}, "OIDC_GOOGLE_HOSTED_DOMAIN"),
        ({**SINGLE, "OIDC_IDP_LOGOUT": "sometimes"}, "OIDC_IDP_LOGOUT"),
        ({**SINGLE, "OIDC_TOKEN_AUTH_METHOD": "private_key_jwt"}, "OIDC_TOKEN_AUTH_METHOD"),
        ({**SINGLE, "SSO_ALLOWED_DOMAINS": "ada@example.com"}, "SSO_ALLOWED_DOMAINS"),
        ({**SINGLE, "OIDC_PROVIDERS": "[]"}, "OIDC_PROVIDERS"),
        ({"OIDC_PROVIDERS": "{not json"}, "OIDC_PROVIDERS"),
        ({"OIDC_PROVIDERS": "{}"}, "OIDC_PROVIDERS"),
        ({"OIDC_PROVIDERS": "[]"}, "OIDC_PROVIDERS"),
        ({"OIDC_PROVIDERS": '["okta"]'}, "OIDC_PROVIDERS[0]"),
        (
            {
                "OIDC_PROVIDERS": '[{"server_url": "https://a.example", "client_id": "a", "client_secret": "b", "secret": "typo"}]'
            },
            "OIDC_PROVIDERS[0]",
        ),
        (
            {"OIDC_PROVIDERS": '[{"server_url": "https://a.example", "client_secret": "b"}]'},
            "OIDC_PROVIDERS[0].client_id",
        ),
        (
            {
                "OIDC_PROVIDERS": '[{"server_url": "https://a.example", "client_id": "a", "client_secret": "b", "idp_logout": "no"}]'
            },
            "OIDC_PROVIDERS[0].idp_logout",
        ),
        (
            {
                "OIDC_PROVIDERS": '[{"id": "a", "server_url": "https://a.example", "client_id": "a", "client_secret": "b"}, {"server_url": "https://b.example", "client_id": "a", "client_secret": "b"}]'
            },
            "OIDC_PROVIDERS[1]",
        ),
        (
            {
                "OIDC_PROVIDERS": '[{"id": "a", "server_url": "https://a.example", "client_id": "a", "client_secret": "b"}, {"id": "a", "server_url": "https://b.example", "client_id": "a", "client_secret": "b"}]'
            },
            "duplicate",
        ),
    ],
)
def test_nonsense_is_refused_naming_the_variable(environ, named):
    assert named in refused(environ)


def test_plain_http_issuer_is_accepted_on_loopback_or_in_debug():
    settings_for({**SINGLE, "OIDC_SERVER_URL": "http://127.0.0.1:9000"})
    settings_for({**SINGLE, "OIDC_SERVER_URL": "http://keycloak:8080/realms/corp"}, debug=True)


def test_a_bad_provider_list_stops_the_app_at_start():
    dropped = ("DEBUG", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update({"DEBUG": "1", "OIDC_PROVIDERS": '[{"id": "x"}]'})
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "OIDC_PROVIDERS[0]" in result.stderr.splitlines()[-1]


def test_production_settings_with_sso_pass_check_deploy():
    result = processes.check_deploy_in_production(**SINGLE)
    assert result.returncode == 0, result.stdout + result.stderr


# --- account linking and group rules, per provider -----------------------------------------


def two_providers(**okta_extra) -> str:
    return json.dumps(
        [
            {
                "id": "okta",
                "server_url": "https://corp.okta.com",
                "client_id": "a",
                "client_secret": "b",
                **okta_extra,
            },
            {"id": "entra", "tenant_id": TENANT, "client_id": "c", "client_secret": "d"},
        ]
    )


def app_settings_by_id(result: dict) -> dict:
    return {app["provider_id"]: app["settings"] for app in apps(result)}


def test_a_single_provider_keeps_group_names_and_the_global_staff_and_admin_groups():
    [app] = apps(settings_for({**SINGLE, "SSO_STAFF_GROUPS": "k", "SSO_ADMIN_GROUPS": "it"}))
    assert app["settings"]["group_prefix"] == ""
    assert (app["settings"]["staff_groups"], app["settings"]["admin_groups"]) == (["k"], ["it"])
    assert app["settings"]["trust_email"] is False


def test_trust_email_is_off_unless_the_operator_opts_in_per_provider():
    [app] = apps(settings_for({**SINGLE, "OIDC_TRUST_EMAIL": "1"}))
    assert app["settings"]["trust_email"] is True
    by_id = app_settings_by_id(settings_for({"OIDC_PROVIDERS": two_providers(trust_email=True)}))
    assert (by_id["okta"]["trust_email"], by_id["entra"]["trust_email"]) == (True, False)


def test_with_several_providers_groups_are_namespaced_unless_the_operator_says_otherwise():
    by_id = app_settings_by_id(settings_for({"OIDC_PROVIDERS": two_providers()}))
    assert (by_id["okta"]["group_prefix"], by_id["entra"]["group_prefix"]) == ("okta:", "entra:")
    by_id = app_settings_by_id(settings_for({"OIDC_PROVIDERS": two_providers(group_prefix="")}))
    assert (by_id["okta"]["group_prefix"], by_id["entra"]["group_prefix"]) == ("", "entra:")


def test_staff_and_admin_groups_are_each_providers_own():
    result = settings_for(
        {
            "OIDC_PROVIDERS": two_providers(staff_groups=["helpdesk"]),
            "SSO_ADMIN_GROUPS": "entra:assistant-admins",
            "SSO_STAFF_GROUPS": "okta:knowledge-admins",
        }
    )
    by_id = app_settings_by_id(result)
    assert by_id["okta"]["staff_groups"] == ["helpdesk", "knowledge-admins"]
    assert by_id["okta"]["admin_groups"] == []
    assert (by_id["entra"]["staff_groups"], by_id["entra"]["admin_groups"]) == (
        [],
        ["assistant-admins"],
    )


def test_a_bare_admin_group_with_several_providers_is_refused_naming_the_fix():
    message = refused({"OIDC_PROVIDERS": two_providers(), "SSO_ADMIN_GROUPS": "assistant-admins"})
    assert "SSO_ADMIN_GROUPS" in message and "okta:assistant-admins" in message


def test_oidc_beside_saml_namespaces_both_by_default():
    result = settings_for(
        {
            **SINGLE,
            "SAML_IDP_METADATA_URL": "https://idp.example.com/saml/metadata",
            "SSO_ADMIN_GROUPS": "saml:it-admins",
        }
    )
    [oidc] = apps(result)
    [saml] = result["SOCIALACCOUNT_PROVIDERS"]["saml"]["APPS"]
    assert (oidc["settings"]["group_prefix"], saml["settings"]["group_prefix"]) == ("sso:", "saml:")
    assert (oidc["settings"]["admin_groups"], saml["settings"]["admin_groups"]) == (
        [],
        ["it-admins"],
    )
    assert saml["settings"]["trust_email"] is False


@pytest.mark.parametrize(
    ("okta_extra", "named"),
    [
        ({"trust_email": "yes"}, "OIDC_PROVIDERS[0].trust_email"),
        ({"staff_groups": "helpdesk"}, "OIDC_PROVIDERS[0].staff_groups"),
        ({"admin_groups": [""]}, "OIDC_PROVIDERS[0].admin_groups"),
        ({"group_prefix": 3}, "OIDC_PROVIDERS[0].group_prefix"),
        ({"group_prefix": "x" * 65}, "OIDC_PROVIDERS[0].group_prefix"),
    ],
)
def test_nonsense_in_the_account_rules_is_refused_naming_the_key(okta_extra, named):
    assert named in refused({"OIDC_PROVIDERS": two_providers(**okta_extra)})
