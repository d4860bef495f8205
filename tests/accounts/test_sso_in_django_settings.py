"""What the SSO variables become in Django's settings, setting by setting, for the kinds of
configuration an operator writes (none, one OpenID Connect provider, several, SAML).

The expected values are written out in full: they are what settings.py produced when it
merged one dict from accounts/sso.py into its globals, and must stay exactly that.
"""

from __future__ import annotations

import json

import pytest

from assistant.project.env import Env
from tests.support.django_settings import django_settings

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SAML_EMAIL = [
    "urn:oid:0.9.2342.19200300.100.1.3",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "email",
    "mail",
]
SAML_NAME = [
    "urn:oid:2.16.840.1.113730.3.1.241",
    "http://schemas.microsoft.com/identity/claims/displayname",
    "displayName",
    "name",
]
SAML_GIVEN_NAME = [
    "urn:oid:2.5.4.42",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
    "givenName",
    "firstName",
]
SAML_FAMILY_NAME = [
    "urn:oid:2.5.4.4",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
    "sn",
    "surname",
    "lastName",
]

# The same in every configuration.
FIXED = {
    "SOCIALACCOUNT_ADAPTER": "accounts.adapters.SocialAccountAdapter",
    "SOCIALACCOUNT_EMAIL_VERIFICATION": "none",
    "SOCIALACCOUNT_AUTO_SIGNUP": True,
    "SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT": True,
    "SOCIALACCOUNT_LOGIN_ON_GET": False,
    "SOCIALACCOUNT_STORE_TOKENS": False,
}

NO_SSO = (
    {},
    {
        **FIXED,
        "SOCIALACCOUNT_PROVIDERS": {},
        "SOCIALACCOUNT_ONLY": False,
        "SOCIALACCOUNT_EMAIL_AUTHENTICATION": True,
        "SOCIALACCOUNT_REQUESTS_TIMEOUT": 10,
        "SSO_EXTRA_APPS": [],
        "SSO_PROVIDER_IDS": [],
        "SSO_ALLOWED_DOMAINS": [],
        "SSO_STAFF_GROUPS": [],
        "SSO_ADMIN_GROUPS": [],
        "ACCOUNT_LOCAL_LOGIN": True,
        "ADMIN_LOCAL_LOGIN": True,
        "SESSION_COOKIE_AGE": 60 * 60 * 24 * 14,
    },
    ["'self'"],
)

ONE_OIDC_PROVIDER = (
    {
        "OIDC_SERVER_URL": "https://login.example.com/realms/corp",
        "OIDC_CLIENT_ID": "assistant",
        "OIDC_CLIENT_SECRET": "s3cret",
        "OIDC_PROVIDER_ID": "keycloak",
        "OIDC_PROVIDER_NAME": "Company login",
        "OIDC_SCOPES": "openid profile email groups",
        "OIDC_TOKEN_AUTH_METHOD": "client_secret_post",
        "OIDC_TIMEOUT": "5",
        "OIDC_EMAIL_AUTHENTICATION": "0",
        "SSO_ALLOWED_DOMAINS": "Example.com, @corp.example",
        "SSO_STAFF_GROUPS": "knowledge",
        "SSO_ADMIN_GROUPS": "it-admins",
        "ADMIN_LOCAL_LOGIN": "1",
    },
    {
        **FIXED,
        "SOCIALACCOUNT_PROVIDERS": {
            "openid_connect": {
                "APPS": [
                    {
                        "provider_id": "keycloak",
                        "name": "Company login",
                        "client_id": "assistant",
                        "secret": "s3cret",
                        "settings": {
                            "server_url": "https://login.example.com/realms/corp",
                            "scope": ["openid", "profile", "email", "groups"],
                            "oauth_pkce_enabled": True,
                            "groups_claim": "groups",
                            "tenant_id": "",
                            "hosted_domain": "",
                            "allowed_domains": [],
                            "idp_logout": True,
                            "trust_email": False,
                            "group_prefix": "",
                            "staff_groups": ["knowledge"],
                            "admin_groups": ["it-admins"],
                            "token_auth_method": "client_secret_post",
                        },
                    }
                ]
            }
        },
        "SOCIALACCOUNT_ONLY": True,
        "SOCIALACCOUNT_EMAIL_AUTHENTICATION": False,
        "SOCIALACCOUNT_REQUESTS_TIMEOUT": 5,
        "SSO_EXTRA_APPS": [],
        "SSO_PROVIDER_IDS": ["keycloak"],
        "SSO_ALLOWED_DOMAINS": ["example.com", "corp.example"],
        "SSO_STAFF_GROUPS": ["knowledge"],
        "SSO_ADMIN_GROUPS": ["it-admins"],
        "ACCOUNT_LOCAL_LOGIN": False,
        "ADMIN_LOCAL_LOGIN": True,
        "SESSION_COOKIE_AGE": 60 * 60 * 10,
    },
    ["'self'", "https://login.example.com"],
)

TWO_OIDC_PROVIDERS = (
    {
        "OIDC_PROVIDERS": json.dumps(
            [
                {
                    "id": "okta",
                    "name": "Okta",
                    "server_url": "https://corp.okta.com",
                    "client_id": "a",
                    "client_secret": "b",
                    "scopes": ["openid", "email", "profile", "groups"],
                    "staff_groups": ["helpdesk"],
                    "trust_email": True,
                },
                {
                    "id": "entra",
                    "name": "Microsoft",
                    "tenant_id": TENANT,
                    "client_id": "c",
                    "client_secret": "d",
                    "groups_claim": "roles",
                    "allowed_domains": ["Subsidiary.example"],
                    "idp_logout": False,
                    "pkce": False,
                },
            ]
        ),
        "SSO_STAFF_GROUPS": "okta:knowledge-admins",
        "SSO_ADMIN_GROUPS": "entra:assistant-admins",
        "ACCOUNT_LOCAL_LOGIN": "1",
    },
    {
        **FIXED,
        "SOCIALACCOUNT_PROVIDERS": {
            "openid_connect": {
                "APPS": [
                    {
                        "provider_id": "okta",
                        "name": "Okta",
                        "client_id": "a",
                        "secret": "b",
                        "settings": {
                            "server_url": "https://corp.okta.com",
                            "scope": ["openid", "email", "profile", "groups"],
                            "oauth_pkce_enabled": True,
                            "groups_claim": "groups",
                            "tenant_id": "",
                            "hosted_domain": "",
                            "allowed_domains": [],
                            "idp_logout": True,
                            "trust_email": True,
                            "group_prefix": "okta:",
                            "staff_groups": ["helpdesk", "knowledge-admins"],
                            "admin_groups": [],
                        },
                    },
                    {
                        "provider_id": "entra",
                        "name": "Microsoft",
                        "client_id": "c",
                        "secret": "d",
                        "settings": {
                            "server_url": f"https://login.microsoftonline.com/{TENANT}/v2.0",
                            "scope": ["openid", "profile", "email"],
                            "oauth_pkce_enabled": False,
                            "groups_claim": "roles",
                            "tenant_id": TENANT,
                            "hosted_domain": "",
                            "allowed_domains": ["subsidiary.example"],
                            "idp_logout": False,
                            "trust_email": False,
                            "group_prefix": "entra:",
                            "staff_groups": [],
                            "admin_groups": ["assistant-admins"],
                        },
                    },
                ]
            }
        },
        "SOCIALACCOUNT_ONLY": False,
        "SOCIALACCOUNT_EMAIL_AUTHENTICATION": True,
        "SOCIALACCOUNT_REQUESTS_TIMEOUT": 10,
        "SSO_EXTRA_APPS": [],
        "SSO_PROVIDER_IDS": ["okta", "entra"],
        "SSO_ALLOWED_DOMAINS": [],
        "SSO_STAFF_GROUPS": ["okta:knowledge-admins"],
        "SSO_ADMIN_GROUPS": ["entra:assistant-admins"],
        "ACCOUNT_LOCAL_LOGIN": True,
        "ADMIN_LOCAL_LOGIN": True,
        "SESSION_COOKIE_AGE": 60 * 60 * 10,
    },
    ["'self'", "https://corp.okta.com", "https://login.microsoftonline.com"],
)

SAML = (
    {
        "SAML_IDP_METADATA_URL": "https://idp.example.com/saml/metadata",
        "SAML_SP_ENTITY_ID": "https://assistant.example.com/saml",
        "SAML_TRUST_EMAIL": "1",
        "SSO_ADMIN_GROUPS": "it-admins",
    },
    {
        **FIXED,
        "SOCIALACCOUNT_PROVIDERS": {
            "saml": {
                "APPS": [
                    {
                        "provider_id": "saml",
                        "client_id": "saml",
                        "name": "Single sign-on",
                        "settings": {
                            "idp": {
                                "metadata_url": "https://idp.example.com/saml/metadata",
                                "entity_id": None,
                            },
                            "attribute_mapping": {
                                "uid": ["urn:oasis:names:tc:SAML:attribute:subject-id"],
                                "email": SAML_EMAIL,
                                "first_name": SAML_GIVEN_NAME,
                                "last_name": SAML_FAMILY_NAME,
                            },
                            "advanced": {
                                "strict": True,
                                "want_assertion_signed": True,
                                "reject_idp_initiated_sso": True,
                                "reject_deprecated_algorithm": True,
                            },
                            "protocol": "saml",
                            "groups_claim": "groups",
                            "name_attributes": SAML_NAME,
                            "idp_logout": False,
                            "trust_email": True,
                            "group_prefix": "",
                            "staff_groups": [],
                            "admin_groups": ["it-admins"],
                            "sp": {"entity_id": "https://assistant.example.com/saml"},
                        },
                    }
                ]
            }
        },
        "SOCIALACCOUNT_ONLY": True,
        "SOCIALACCOUNT_EMAIL_AUTHENTICATION": True,
        "SOCIALACCOUNT_REQUESTS_TIMEOUT": 10,
        "SSO_EXTRA_APPS": ["allauth.socialaccount.providers.saml"],
        "SSO_PROVIDER_IDS": ["saml"],
        "SSO_ALLOWED_DOMAINS": [],
        "SSO_STAFF_GROUPS": [],
        "SSO_ADMIN_GROUPS": ["it-admins"],
        "ACCOUNT_LOCAL_LOGIN": False,
        "ADMIN_LOCAL_LOGIN": False,
        "SESSION_COOKIE_AGE": 60 * 60 * 10,
    },
    ["'self'", "https://idp.example.com"],
)


@pytest.mark.parametrize(
    ("environ", "expected", "form_action"),
    [NO_SSO, ONE_OIDC_PROVIDER, TWO_OIDC_PROVIDERS, SAML],
    ids=["no-sso", "one-oidc-provider", "two-oidc-providers", "saml"],
)
def test_each_configuration_gives_exactly_these_settings(environ, expected, form_action):
    settings = django_settings(Env(environ), debug=False)
    assert {name: settings[name] for name in expected} == expected
    installed = settings["INSTALLED_APPS"]
    assert installed[installed.index("assistant.slack") + 1 :] == expected["SSO_EXTRA_APPS"]
    assert settings["CONTENT_SECURITY_POLICY"]["DIRECTIVES"]["form-action"] == form_action


def test_in_debug_local_sign_in_stays_on_beside_a_provider():
    environ, expected, _ = ONE_OIDC_PROVIDER
    environ = {name: value for name, value in environ.items() if name != "ADMIN_LOCAL_LOGIN"}
    settings = django_settings(Env(environ), debug=True)
    assert (settings["ACCOUNT_LOCAL_LOGIN"], settings["SOCIALACCOUNT_ONLY"]) == (True, False)
    assert settings["ADMIN_LOCAL_LOGIN"] is True
    assert settings["SOCIALACCOUNT_PROVIDERS"] == expected["SOCIALACCOUNT_PROVIDERS"]
