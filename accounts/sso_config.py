"""Single sign-on, first half: the ``OIDC_*`` / ``SAML_*`` / ``SSO_*`` / ``ACCOUNT_LOCAL_LOGIN``
environment variables, checked and turned into what Django's settings need.

:func:`sso_settings` returns an :class:`SSOSettings`; ``assistant/project/settings.py`` assigns each of
its fields to a Django setting by name. allauth's OpenID Connect provider gets one app per
identity provider and its SAML 2.0 provider one identity provider; each app's settings also
carry our own keys (domain and group rules) that the sign-in rules read back. Anything that
cannot work raises ImproperlyConfigured naming the variable, at start.

The rules every sign-in obeys are the other half, ``accounts/sso.py``; this module imports the
SAML attribute names from there, as both halves read them. Nothing here touches requests or
the database.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from accounts.sso import (
    SAML_EMAIL_ATTRIBUTES,
    SAML_FAMILY_NAME_ATTRIBUTES,
    SAML_GIVEN_NAME_ATTRIBUTES,
    SAML_NAME_ATTRIBUTES,
)

DEFAULT_PROVIDER_ID = "sso"
DEFAULT_PROVIDER_NAME = "Single sign-on"
DEFAULT_SCOPES = ("openid", "profile", "email")
DEFAULT_GROUPS_CLAIM = "groups"
ENTRA_SERVER_URL = "https://login.microsoftonline.com/{tenant_id}/v2.0"
GOOGLE_SERVER_URL = "https://accounts.google.com"

# Keys of one object in OIDC_PROVIDERS (JSON); the single-provider variables are the same
# names in upper case with an ``OIDC_`` prefix (tenant_id / hosted_domain: see _SINGLE_ENV).
_PROVIDER_KEYS = {
    "id",
    "name",
    "server_url",
    "client_id",
    "client_secret",
    "scopes",
    "groups_claim",
    "tenant_id",
    "hosted_domain",
    "allowed_domains",
    "idp_logout",
    "pkce",
    "token_auth_method",
    "trust_email",
    "group_prefix",
    "staff_groups",
    "admin_groups",
}
_SINGLE_ENV = {
    "id": "OIDC_PROVIDER_ID",
    "name": "OIDC_PROVIDER_NAME",
    "server_url": "OIDC_SERVER_URL",
    "client_id": "OIDC_CLIENT_ID",
    "client_secret": "OIDC_CLIENT_SECRET",
    "scopes": "OIDC_SCOPES",
    "groups_claim": "OIDC_GROUPS_CLAIM",
    "tenant_id": "OIDC_ENTRA_TENANT_ID",
    "hosted_domain": "OIDC_GOOGLE_HOSTED_DOMAIN",
    "idp_logout": "OIDC_IDP_LOGOUT",
    "pkce": "OIDC_PKCE",
    "token_auth_method": "OIDC_TOKEN_AUTH_METHOD",
    "trust_email": "OIDC_TRUST_EMAIL",
    "group_prefix": "OIDC_GROUP_PREFIX",
}
# The JSON form also takes the single-provider variable names, lower-cased, without OIDC_.
_KEY_ALIASES = {
    "provider_id": "id",
    "provider_name": "name",
    "entra_tenant_id": "tenant_id",
    "google_hosted_domain": "hosted_domain",
}
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_DOMAIN_RE = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$"
)
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
# Between a provider id and a group name in SSO_STAFF_GROUPS / SSO_ADMIN_GROUPS entries and
# in the default group prefix; never part of a provider id (see _ID_RE).
GROUP_SEPARATOR = ":"
_GROUP_PREFIX_MAX_LENGTH = 64


@dataclass(frozen=True)
class OIDCProvider:
    """One identity provider, validated. ``as_allauth_app`` is what allauth reads."""

    id: str
    name: str
    server_url: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    groups_claim: str = DEFAULT_GROUPS_CLAIM
    tenant_id: str = ""
    hosted_domain: str = ""
    allowed_domains: tuple[str, ...] = ()
    idp_logout: bool = True
    pkce: bool = True
    token_auth_method: str = ""
    trust_email: bool = False
    # None until sso_settings resolves it (see _resolve_group_rules).
    group_prefix: str | None = None
    staff_groups: tuple[str, ...] = ()
    admin_groups: tuple[str, ...] = ()

    def as_allauth_app(self) -> dict:
        app_settings: dict = {
            "server_url": self.server_url,
            "scope": list(self.scopes),
            "oauth_pkce_enabled": self.pkce,
            # Ours (allauth ignores them; the adapters read them from app.settings):
            "groups_claim": self.groups_claim,
            "tenant_id": self.tenant_id,
            "hosted_domain": self.hosted_domain,
            "allowed_domains": list(self.allowed_domains),
            "idp_logout": self.idp_logout,
            **_account_rule_settings(self),
        }
        if self.hosted_domain:
            # Google shows only accounts of this Workspace domain; the returned ``hd``
            # claim is still checked, as a user can edit this parameter in the URL.
            app_settings["auth_params"] = {"hd": self.hosted_domain}
        if self.token_auth_method:
            app_settings["token_auth_method"] = self.token_auth_method
        return {
            "provider_id": self.id,
            "name": self.name,
            "client_id": self.client_id,
            "secret": self.client_secret,
            "settings": app_settings,
        }


# --- settings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SSOSettings:
    """What the SSO variables decide, one field per Django setting (named beside each)."""

    providers: dict  # SOCIALACCOUNT_PROVIDERS
    # SSO_EXTRA_APPS, appended to INSTALLED_APPS: the SAML provider's app, when configured.
    extra_apps: list[str]
    provider_ids: list[str]  # SSO_PROVIDER_IDS
    allowed_domains: list[str]  # SSO_ALLOWED_DOMAINS
    # SSO_STAFF_GROUPS / SSO_ADMIN_GROUPS as written; each provider's share of them is in its
    # app settings (staff_groups, admin_groups), which is all the sign-in code reads.
    staff_groups: list[str]
    admin_groups: list[str]
    local_login: bool  # ACCOUNT_LOCAL_LOGIN
    admin_local_login: bool  # ADMIN_LOCAL_LOGIN
    email_authentication: bool  # SOCIALACCOUNT_EMAIL_AUTHENTICATION
    requests_timeout: int  # SOCIALACCOUNT_REQUESTS_TIMEOUT


def sso_settings(env, *, debug: bool) -> SSOSettings:
    """The SSO part of Django's settings (allauth providers, domain and group rules).

    Reads the single-provider ``OIDC_*`` variables or ``OIDC_PROVIDERS`` (JSON), never both,
    and ``SAML_*`` for one SAML 2.0 identity provider (beside or instead of OIDC); raises
    ImproperlyConfigured naming the variable on anything that cannot work.
    """
    providers = parse_providers(env, debug=debug)
    saml = parse_saml_provider(env, debug=debug)
    provider_ids = [p.id for p in providers] + ([saml.id] if saml else [])
    if saml and saml.id in provider_ids[:-1]:
        raise ImproperlyConfigured(
            f"SAML_PROVIDER_ID={saml.id!r} is also the id of an OpenID Connect provider: "
            "give each identity provider its own id."
        )
    staff_groups = env.list("SSO_STAFF_GROUPS")
    admin_groups = env.list("SSO_ADMIN_GROUPS")
    providers, saml = _resolve_group_rules(
        providers,
        saml,
        staff=_groups_by_provider(staff_groups, "SSO_STAFF_GROUPS", provider_ids),
        admin=_groups_by_provider(admin_groups, "SSO_ADMIN_GROUPS", provider_ids),
    )
    local_login = env.bool("ACCOUNT_LOCAL_LOGIN", not provider_ids or debug)
    if not provider_ids and not local_login:
        raise ImproperlyConfigured(
            "ACCOUNT_LOCAL_LOGIN=0 but no SSO provider is configured (OIDC_SERVER_URL, "
            "OIDC_PROVIDERS, SAML_IDP_METADATA_URL or SAML_IDP_SSO_URL): nobody could sign in."
        )
    allauth_providers: dict = {}
    if providers:
        allauth_providers["openid_connect"] = {"APPS": [p.as_allauth_app() for p in providers]}
    if saml:
        allauth_providers["saml"] = {"APPS": [saml.as_allauth_app()]}
    return SSOSettings(
        providers=allauth_providers,
        extra_apps=[SAML_APP] if saml else [],
        email_authentication=env.bool("OIDC_EMAIL_AUTHENTICATION", True),
        requests_timeout=env.int("OIDC_TIMEOUT", 10, min_value=1),
        provider_ids=provider_ids,
        allowed_domains=_domains(env.list("SSO_ALLOWED_DOMAINS"), "SSO_ALLOWED_DOMAINS"),
        staff_groups=staff_groups,
        admin_groups=admin_groups,
        local_login=local_login,
        admin_local_login=env.bool("ADMIN_LOCAL_LOGIN", local_login),
    )


def _groups_by_provider(
    entries: list[str], where: str, provider_ids: list[str]
) -> dict[str, tuple[str, ...]]:
    """Splits SSO_STAFF_GROUPS / SSO_ADMIN_GROUPS into each provider's claim values.

    An entry ``okta:it-admins`` applies to provider ``okta`` only. A bare ``it-admins`` is
    accepted only with a single provider: with several, it would let any of them grant the
    rights by sending that name, so it is refused (name the provider).
    """
    result: dict[str, list[str]] = {}
    for entry in entries:
        head, separator, tail = entry.partition(GROUP_SEPARATOR)
        if separator and head in provider_ids and tail:
            result.setdefault(head, []).append(tail)
        elif len(provider_ids) == 1:
            result.setdefault(provider_ids[0], []).append(entry)
        elif provider_ids:
            raise ImproperlyConfigured(
                f"{where}: {entry!r} does not say which identity provider may grant it, and "
                f"several are configured ({', '.join(provider_ids)}): write it as "
                f"<provider id>{GROUP_SEPARATOR}<group>, e.g. {provider_ids[0]}{GROUP_SEPARATOR}{tail or head}."
            )
    return {key: tuple(dict.fromkeys(values)) for key, values in result.items()}


def _resolve_group_rules(providers, saml, *, staff: dict, admin: dict):
    """Fills each provider's group prefix and staff / admin groups.

    With one identity provider, group names are used as sent (single-provider installs keep
    their group names). With several, each provider's groups become ``<id>:<name>`` unless
    its ``group_prefix`` says otherwise (``""`` = this provider's names are used as sent:
    the operator trusts it with the plain names), so no provider can join a group that
    collections share through another provider's claim.
    """
    several = len(providers) + (1 if saml else 0) > 1

    def resolve(provider):
        prefix = provider.group_prefix
        if prefix is None:
            prefix = f"{provider.id}{GROUP_SEPARATOR}" if several else ""
        return replace(
            provider,
            group_prefix=prefix,
            staff_groups=tuple(dict.fromkeys(provider.staff_groups + staff.get(provider.id, ()))),
            admin_groups=tuple(dict.fromkeys(provider.admin_groups + admin.get(provider.id, ()))),
        )

    return [resolve(p) for p in providers], (resolve(saml) if saml else None)


def _account_rule_settings(provider) -> dict:
    """Ours (allauth ignores them): what a sign-in through ``provider`` may link and grant;
    read back by sso.GroupRules.from_app_settings and sso.email_links_existing_account."""
    return {
        "trust_email": provider.trust_email,
        "group_prefix": provider.group_prefix or "",
        "staff_groups": list(provider.staff_groups),
        "admin_groups": list(provider.admin_groups),
    }


def parse_providers(env, *, debug: bool) -> list[OIDCProvider]:
    single_set = [name for name in _SINGLE_ENV.values() if env.is_set(name)]
    if env.is_set("OIDC_PROVIDERS"):
        if single_set:
            raise ImproperlyConfigured(
                f"OIDC_PROVIDERS is set together with {', '.join(single_set)}: use either the "
                "single-provider OIDC_* variables or OIDC_PROVIDERS (JSON), not both."
            )
        return _parse_json_providers(env.str("OIDC_PROVIDERS"), debug=debug)
    core = ("OIDC_SERVER_URL", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET")
    if not any(
        env.is_set(name) for name in (*core, "OIDC_ENTRA_TENANT_ID", "OIDC_GOOGLE_HOSTED_DOMAIN")
    ):
        return []
    raw = {key: env.str(name) for key, name in _SINGLE_ENV.items() if env.is_set(name)}
    if "idp_logout" in raw:
        raw["idp_logout"] = env.bool("OIDC_IDP_LOGOUT", True)
    if "pkce" in raw:
        raw["pkce"] = env.bool("OIDC_PKCE", True)
    if "groups_claim" not in raw and "OIDC_GROUPS_CLAIM" in env.environ:
        raw["groups_claim"] = ""  # set but empty: group sync off
    if "trust_email" in raw:
        raw["trust_email"] = env.bool("OIDC_TRUST_EMAIL", False)
    if "group_prefix" not in raw and "OIDC_GROUP_PREFIX" in env.environ:
        raw["group_prefix"] = ""  # set but empty: names as sent, even beside SAML
    return [
        _provider_from_mapping(
            raw, where=lambda key: _SINGLE_ENV.get(key, "SSO_ALLOWED_DOMAINS"), debug=debug
        )
    ]


def _parse_json_providers(text: str, *, debug: bool) -> list[OIDCProvider]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ImproperlyConfigured(f"OIDC_PROVIDERS is not valid JSON: {error}.") from None
    if not isinstance(data, list) or not data:
        raise ImproperlyConfigured(
            'OIDC_PROVIDERS must be a non-empty JSON list of objects, e.g. [{"id": "okta", '
            '"name": "Okta", "server_url": "https://...", "client_id": "...", "client_secret": "..."}].'
        )
    providers = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise ImproperlyConfigured(f"OIDC_PROVIDERS[{index}] must be a JSON object.")
        item = _canonical_keys(item, index)
        if len(data) > 1 and "id" not in item:
            raise ImproperlyConfigured(
                f'OIDC_PROVIDERS[{index}] needs an "id" when several providers are configured.'
            )
        providers.append(
            _provider_from_mapping(
                item, where=lambda key, i=index: f"OIDC_PROVIDERS[{i}].{key}", debug=debug
            )
        )
    ids = [p.id for p in providers]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ImproperlyConfigured(f"OIDC_PROVIDERS has duplicate ids: {duplicates}.")
    return providers


def _canonical_keys(item: dict, index: int) -> dict:
    canonical: dict = {}
    for key, value in item.items():
        name = _KEY_ALIASES.get(key, key)
        if name not in _PROVIDER_KEYS:
            raise ImproperlyConfigured(
                f"OIDC_PROVIDERS[{index}] has an unknown key {key!r}; "
                f"allowed: {', '.join(sorted(_PROVIDER_KEYS))}."
            )
        if name in canonical:
            raise ImproperlyConfigured(f"OIDC_PROVIDERS[{index}] sets {name!r} twice.")
        canonical[name] = value
    return canonical


def _provider_from_mapping(raw: Mapping, *, where, debug: bool) -> OIDCProvider:
    def text(key: str, default: str = "") -> str:
        value = raw.get(key, default)
        if not isinstance(value, str):
            raise ImproperlyConfigured(f"{where(key)} must be a string.")
        return value.strip()

    def flag(key: str, default: bool) -> bool:
        value = raw.get(key, default)
        if not isinstance(value, bool):
            raise ImproperlyConfigured(f"{where(key)} must be true or false.")
        return value

    provider_id = text("id", DEFAULT_PROVIDER_ID).lower()
    if not _ID_RE.match(provider_id):
        raise ImproperlyConfigured(
            f"{where('id')}={provider_id!r} must be lower-case letters, digits, '-' or '_' "
            "(it becomes part of the callback URL)."
        )
    tenant_id = text("tenant_id").lower()
    if tenant_id and not _GUID_RE.match(tenant_id):
        raise ImproperlyConfigured(
            f"{where('tenant_id')}={tenant_id!r} must be the tenant's Directory (tenant) ID, a "
            "GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47 (the `tid` claim is always one)."
        )
    hosted_domain = text("hosted_domain").lower()
    if hosted_domain and not _DOMAIN_RE.match(hosted_domain):
        raise ImproperlyConfigured(
            f"{where('hosted_domain')}={hosted_domain!r} is not a domain name."
        )
    server_url = text("server_url")
    if not server_url and tenant_id:
        server_url = ENTRA_SERVER_URL.format(tenant_id=tenant_id)
    elif not server_url and hosted_domain:
        server_url = GOOGLE_SERVER_URL
    if not server_url:
        raise ImproperlyConfigured(
            f"{where('server_url')} is required: the identity provider's issuer URL "
            "(its /.well-known/openid-configuration is read from there)."
        )
    _check_server_url(server_url, where("server_url"), debug=debug)
    client_id = text("client_id")
    if not client_id:
        raise ImproperlyConfigured(
            f"{where('client_id')} is required (from the app registration at the identity provider)."
        )
    client_secret = text("client_secret")
    if not client_secret:
        raise ImproperlyConfigured(
            f"{where('client_secret')} is required (from the app registration at the identity provider)."
        )
    scopes = _scopes(raw.get("scopes", DEFAULT_SCOPES), where("scopes"))
    groups_claim = text("groups_claim", DEFAULT_GROUPS_CLAIM)
    allowed = raw.get("allowed_domains", [])
    if isinstance(allowed, str):
        allowed = [d for d in allowed.split(",") if d.strip()]
    if not isinstance(allowed, list) or not all(isinstance(d, str) for d in allowed):
        raise ImproperlyConfigured(f"{where('allowed_domains')} must be a list of domain names.")
    group_prefix = raw.get("group_prefix")
    if group_prefix is not None and (
        not isinstance(group_prefix, str) or len(group_prefix) > _GROUP_PREFIX_MAX_LENGTH
    ):
        raise ImproperlyConfigured(
            f"{where('group_prefix')} must be a string of at most {_GROUP_PREFIX_MAX_LENGTH} "
            'characters ("" = group names as the provider sends them).'
        )
    token_auth_method = text("token_auth_method")
    if token_auth_method and token_auth_method not in _TOKEN_AUTH_METHODS:
        raise ImproperlyConfigured(
            f"{where('token_auth_method')}={token_auth_method!r} must be one of {', '.join(_TOKEN_AUTH_METHODS)}."
        )
    return OIDCProvider(
        id=provider_id,
        name=text("name") or DEFAULT_PROVIDER_NAME,
        server_url=server_url,
        client_id=client_id,
        client_secret=client_secret,
        scopes=scopes,
        groups_claim=groups_claim,
        tenant_id=tenant_id,
        hosted_domain=hosted_domain,
        allowed_domains=tuple(_domains(allowed, where("allowed_domains"))),
        idp_logout=flag("idp_logout", True),
        pkce=flag("pkce", True),
        token_auth_method=token_auth_method,
        trust_email=flag("trust_email", False),
        group_prefix=group_prefix,
        staff_groups=_group_list(raw.get("staff_groups", []), where("staff_groups")),
        admin_groups=_group_list(raw.get("admin_groups", []), where("admin_groups")),
    )


def _group_list(value, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(g, str) and g.strip() for g in value):
        raise ImproperlyConfigured(
            f"{where} must be a list of group names as the provider sends them in its groups claim."
        )
    return tuple(dict.fromkeys(g.strip() for g in value))


def _check_server_url(url: str, where: str, *, debug: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ImproperlyConfigured(f"{where}={url!r} is not an http(s) URL.")
    if parts.scheme == "http" and not debug and parts.hostname not in _LOOPBACK_HOSTS:
        raise ImproperlyConfigured(
            f"{where}={url!r} must use https (plain http is only accepted for 127.0.0.1 / "
            "localhost, or with DEBUG=1)."
        )


def _scopes(value, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        items = value.replace(",", " ").split()
    elif isinstance(value, list | tuple) and all(isinstance(s, str) for s in value):
        items = [s.strip() for s in value if s.strip()]
    else:
        raise ImproperlyConfigured(f"{where} must be a space-separated string or a list of scopes.")
    if "openid" not in items:
        raise ImproperlyConfigured(f"{where}={' '.join(items)!r} must include 'openid'.")
    return tuple(dict.fromkeys(items))


def _domains(values, where: str) -> list[str]:
    domains = []
    for value in values:
        domain = value.strip().lower().removeprefix("@")
        if not _DOMAIN_RE.match(domain):
            raise ImproperlyConfigured(
                f"{where}: {value!r} is not a domain name (e.g. example.com)."
            )
        domains.append(domain)
    return domains


# --- SAML 2.0 ----------------------------------------------------------------------------

# The app that must be in INSTALLED_APPS for SAML (its URLs import python3-saml, installed
# by the ``saml`` extra of django-allauth).
SAML_APP = "allauth.socialaccount.providers.saml"
DEFAULT_SAML_PROVIDER_ID = "saml"
DEFAULT_SAML_GROUPS_ATTRIBUTE = "groups"
# The standard stable subject identifier; without it the NameID is the account's uid.
SAML_UID_ATTRIBUTES = ("urn:oasis:names:tc:SAML:attribute:subject-id",)
_SAML_ENV = (
    "SAML_IDP_METADATA_URL",
    "SAML_IDP_ENTITY_ID",
    "SAML_IDP_SSO_URL",
    "SAML_IDP_X509_CERT",
)
_PEM_LINE_RE = re.compile(r"-----(BEGIN|END) CERTIFICATE-----")


@dataclass(frozen=True)
class SAMLProvider:
    """The SAML 2.0 identity provider, validated. ``as_allauth_app`` is what allauth reads.

    Either ``idp_metadata_url`` (allauth reads the entity id, SSO URL and signing certificate
    from it, cached for 4 hours) or ``idp_sso_url`` + ``idp_x509_cert`` + ``idp_entity_id``.
    """

    id: str
    name: str
    idp_metadata_url: str = ""
    idp_entity_id: str = ""
    idp_sso_url: str = ""
    idp_x509_cert: str = ""
    sp_entity_id: str = ""
    email_attributes: tuple[str, ...] = SAML_EMAIL_ATTRIBUTES
    name_attributes: tuple[str, ...] = SAML_NAME_ATTRIBUTES
    groups_attribute: str = DEFAULT_SAML_GROUPS_ATTRIBUTE
    uid_attributes: tuple[str, ...] = SAML_UID_ATTRIBUTES
    # SAML has no "verified" flag: the assertion is signed by the IdP the operator chose, but
    # some IdPs let people edit the address it sends. Off by default: an existing account is
    # signed into by its e-mail only with SAML_TRUST_EMAIL=1.
    trust_email: bool = False
    group_prefix: str | None = None
    staff_groups: tuple[str, ...] = ()
    admin_groups: tuple[str, ...] = ()

    def as_allauth_app(self) -> dict:
        if self.idp_metadata_url:
            idp: dict = {
                "metadata_url": self.idp_metadata_url,
                "entity_id": self.idp_entity_id or None,
            }
        else:
            idp = {
                "entity_id": self.idp_entity_id,
                "sso_url": self.idp_sso_url,
                "x509cert": self.idp_x509_cert,
            }
        app_settings: dict = {
            "idp": idp,
            "attribute_mapping": {
                "uid": list(self.uid_attributes),
                "email": list(self.email_attributes),
                "first_name": list(SAML_GIVEN_NAME_ATTRIBUTES),
                "last_name": list(SAML_FAMILY_NAME_ATTRIBUTES),
            },
            "advanced": {
                "strict": True,
                # Only a signed assertion is believed: an unsigned one inside a signed
                # response, or an unsigned response, is refused (python3-saml checks both).
                "want_assertion_signed": True,
                "reject_idp_initiated_sso": True,
                "reject_deprecated_algorithm": True,
            },
            # Ours (allauth ignores them; the adapters read them from app.settings):
            "protocol": "saml",
            "groups_claim": self.groups_attribute,
            "name_attributes": list(self.name_attributes),
            "idp_logout": False,  # no SAML single logout: signing out ends our session only
            **_account_rule_settings(self),
        }
        if self.sp_entity_id:
            app_settings["sp"] = {"entity_id": self.sp_entity_id}
        return {
            # client_id is the "organization slug" in allauth's SAML URLs
            # (/accounts/saml/<id>/acs/); provider_id is SocialAccount.provider.
            "provider_id": self.id,
            "client_id": self.id,
            "name": self.name,
            "settings": app_settings,
        }


def parse_saml_provider(env, *, debug: bool) -> SAMLProvider | None:
    """The SAML identity provider from ``SAML_*`` variables, or ``None`` when none is set."""
    if not any(env.is_set(name) for name in _SAML_ENV):
        return None
    provider_id = env.str("SAML_PROVIDER_ID", DEFAULT_SAML_PROVIDER_ID).lower()
    if not _ID_RE.match(provider_id):
        raise ImproperlyConfigured(
            f"SAML_PROVIDER_ID={provider_id!r} must be lower-case letters, digits, '-' or '_' "
            "(it becomes part of the SAML URLs)."
        )
    metadata_url = env.str("SAML_IDP_METADATA_URL")
    entity_id = env.str("SAML_IDP_ENTITY_ID")
    sso_url = env.str("SAML_IDP_SSO_URL")
    cert = env.str("SAML_IDP_X509_CERT")
    if metadata_url:
        if sso_url or cert:
            raise ImproperlyConfigured(
                "SAML_IDP_METADATA_URL is set together with SAML_IDP_SSO_URL / "
                "SAML_IDP_X509_CERT: use the metadata URL, or the three SAML_IDP_ENTITY_ID, "
                "SAML_IDP_SSO_URL and SAML_IDP_X509_CERT, not both."
            )
        _check_server_url(metadata_url, "SAML_IDP_METADATA_URL", debug=debug)
    else:
        missing = [
            name
            for name, value in (
                ("SAML_IDP_ENTITY_ID", entity_id),
                ("SAML_IDP_SSO_URL", sso_url),
                ("SAML_IDP_X509_CERT", cert),
            )
            if not value
        ]
        if missing:
            raise ImproperlyConfigured(
                f"SAML needs {', '.join(missing)} (from the identity provider's SAML app), or "
                "SAML_IDP_METADATA_URL instead of all three."
            )
        _check_server_url(sso_url, "SAML_IDP_SSO_URL", debug=debug)
        cert = _certificate_body(cert)
    groups_attribute = env.str("SAML_GROUPS_ATTRIBUTE", DEFAULT_SAML_GROUPS_ATTRIBUTE)
    if "SAML_GROUPS_ATTRIBUTE" in env.environ and not env.is_set("SAML_GROUPS_ATTRIBUTE"):
        groups_attribute = ""  # set but empty: group sync off
    return SAMLProvider(
        id=provider_id,
        name=env.str("SAML_PROVIDER_NAME", DEFAULT_PROVIDER_NAME),
        idp_metadata_url=metadata_url,
        idp_entity_id=entity_id,
        idp_sso_url=sso_url,
        idp_x509_cert=cert,
        sp_entity_id=env.str("SAML_SP_ENTITY_ID"),
        email_attributes=tuple(env.list("SAML_EMAIL_ATTRIBUTE", list(SAML_EMAIL_ATTRIBUTES))),
        name_attributes=tuple(env.list("SAML_NAME_ATTRIBUTE", list(SAML_NAME_ATTRIBUTES))),
        groups_attribute=groups_attribute,
        uid_attributes=tuple(env.list("SAML_UID_ATTRIBUTE", list(SAML_UID_ATTRIBUTES))),
        trust_email=env.bool("SAML_TRUST_EMAIL", False),
        group_prefix=env.str("SAML_GROUP_PREFIX") if "SAML_GROUP_PREFIX" in env.environ else None,
    )


def _certificate_body(text: str) -> str:
    """The base64 body of a PEM certificate (headers, spaces and line breaks dropped)."""
    body = "".join(_PEM_LINE_RE.sub("", text.replace("\\n", "\n")).split())
    try:
        der = base64.b64decode(body, validate=True)
    except ValueError:
        der = b""
    if not der.startswith(b"\x30"):  # an X.509 certificate is a DER SEQUENCE
        raise ImproperlyConfigured(
            "SAML_IDP_X509_CERT is not a certificate: paste the identity provider's signing "
            "certificate, PEM (-----BEGIN CERTIFICATE-----...) or its base64 body."
        )
    return body
