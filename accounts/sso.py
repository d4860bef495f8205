"""Single sign-on, second half: the rules every SSO sign-in obeys.

:func:`sign_in_refusal`, :func:`groups_from_claims` and friends read the claims of one sign-in
(allauth keeps them in ``SocialAccount.extra_data`` as ``{"id_token": {...}, "userinfo":
{...}}``; a SAML sign-in's attributes are first mapped to the same claim names by
:func:`saml_claims`, kept under ``CLAIMS_KEY``) and decide whether it may proceed, and which
groups and rights it brings. The per-provider rules they apply (tenant, domains, groups claim,
group prefix, staff / admin groups, trust_email) come from each allauth app's settings, which
``accounts/sso_config.py`` builds from the environment (the first half).

Free of requests and of the database, so it is tested alone. The adapters in
``accounts/adapters.py`` call these; ``accounts/services.py`` applies the result (profile,
groups, staff flags).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

_FALSE_STRINGS = {"false", "0", "no"}
_TRUE_STRINGS = {"true"}
# Where the adapters keep, per social account, what the last SSO sign-in granted (so the
# next one removes only groups that came from SSO). allauth replaces the rest of
# extra_data with the provider's fresh claims at every sign-in; see adapters.populate_user.
SSO_STATE_KEY = "assistant_sso"
# The session entry used for RP-initiated logout at the identity provider.
SSO_LOGOUT_SESSION_KEY = "assistant_sso_logout"
# Where a SAML sign-in's attributes, mapped to OIDC claim names, are kept in extra_data (the
# rest of it is allauth's ``{attribute name: [values]}``); see saml_claims.
CLAIMS_KEY = "assistant_claims"
# SAML attribute names, tried in order (saml_claims reads them; sso_config gives them to
# allauth's attribute mapping). The URN forms are what most providers send (eduPerson /
# X.500 OIDs, as Shibboleth, Keycloak, Okta and Google can); the schemas.xmlsoap.org forms are
# Entra ID's and AD FS's; the short names are common custom mappings.
SAML_EMAIL_ATTRIBUTES = (
    "urn:oid:0.9.2342.19200300.100.1.3",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "email",
    "mail",
)
SAML_NAME_ATTRIBUTES = (
    "urn:oid:2.16.840.1.113730.3.1.241",
    "http://schemas.microsoft.com/identity/claims/displayname",
    "displayName",
    "name",
)
SAML_GIVEN_NAME_ATTRIBUTES = (
    "urn:oid:2.5.4.42",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
    "givenName",
    "firstName",
)
SAML_FAMILY_NAME_ATTRIBUTES = (
    "urn:oid:2.5.4.4",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
    "sn",
    "surname",
    "lastName",
)
# Entra ID sends this instead of the groups when a user is in too many of them.
ENTRA_GROUPS_LINK_ATTRIBUTE = "http://schemas.microsoft.com/claims/groups.link"


# --- the rules of one sign-in -----------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Why a sign-in is refused: a stable ``code`` (logged) and a message for the person."""

    code: str
    message: str


def claim_sources(extra_data: Mapping) -> list[Mapping]:
    """The claim sets of one sign-in: the ID token's, then userinfo's (either may be missing),
    or for SAML the attributes mapped by :func:`saml_claims`."""
    sources = [extra_data.get("id_token"), extra_data.get("userinfo"), extra_data.get(CLAIMS_KEY)]
    return [s for s in sources if isinstance(s, Mapping)]


def merged_claims(extra_data: Mapping) -> dict:
    """ID token claims overlaid with userinfo's, as allauth fills the user (userinfo wins)."""
    claims: dict = {}
    for source in claim_sources(extra_data):
        claims.update(source)
    return claims


def email_domain(email: str) -> str:
    return email.rpartition("@")[2].strip().lower()


def _explicitly_false(value) -> bool:
    return value is False or (isinstance(value, str) and value.strip().lower() in _FALSE_STRINGS)


def email_verified_accepted(extra_data: Mapping) -> bool:
    """Whether the sign-in may go on at all: only an explicit ``email_verified: false`` stops it.

    Several enterprise providers (Entra ID among them) send no ``email_verified`` at all for
    addresses the organisation itself manages; such a person may still get a new account. Signing
    into an *existing* account by e-mail needs more: see :func:`email_links_existing_account`.
    """
    return not any(_explicitly_false(s.get("email_verified")) for s in claim_sources(extra_data))


def _explicitly_true(value) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in _TRUE_STRINGS)


def email_verified_asserted(extra_data: Mapping) -> bool:
    """True when the provider says ``email_verified: true`` (every claim set that carries it)."""
    values = [s["email_verified"] for s in claim_sources(extra_data) if "email_verified" in s]
    return bool(values) and all(_explicitly_true(v) for v in values)


def email_links_existing_account(extra_data: Mapping, app_settings: Mapping) -> bool:
    """Whether this sign-in's e-mail is proof enough to sign into an existing account with it.

    Yes when the provider asserts ``email_verified: true``, or when the operator trusts the
    addresses of this provider (``trust_email``: Entra ID, which sends no such claim, and SAML)
    and the provider does not say the address is unverified. The answer becomes the
    ``verified`` flag of the login's e-mail addresses, which is what allauth's lookup by e-mail
    (SOCIALACCOUNT_EMAIL_AUTHENTICATION) and the stored EmailAddress read.
    """
    if not email_verified_accepted(extra_data):
        return False
    return email_verified_asserted(extra_data) or app_settings.get("trust_email") is True


def _claim_is(extra_data: Mapping, name: str, expected: str) -> bool:
    """True when the claim is present and every source that carries it says ``expected``."""
    values = [str(s[name]).strip().lower() for s in claim_sources(extra_data) if name in s]
    return bool(values) and all(v == expected for v in values)


def sign_in_refusal(
    extra_data: Mapping, *, app_settings: Mapping, allowed_domains: list[str]
) -> Refusal | None:
    """Checks one SSO sign-in against the configured rules; ``None`` means it may proceed.

    ``app_settings`` is the provider's allauth app settings (see
    sso_config.OIDCProvider.as_allauth_app); ``allowed_domains`` is SSO_ALLOWED_DOMAINS.
    """
    claims = merged_claims(extra_data)
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        return Refusal(
            "email_missing",
            "Your identity provider did not send an email address for your account, so you "
            "cannot be signed in. Ask your administrator to release the email claim to this app.",
        )
    if not email_verified_accepted(extra_data):
        return Refusal(
            "email_unverified",
            f"Your identity provider says the address {email} is not verified. Verify it there, "
            "then sign in again.",
        )
    tenant_id = app_settings.get("tenant_id")
    if tenant_id and not _claim_is(extra_data, "tid", tenant_id):
        return Refusal(
            "tenant",
            "This Microsoft account belongs to a different organisation (Entra ID tenant) than "
            "the one allowed to use this assistant. Sign in with your work account.",
        )
    hosted_domain = app_settings.get("hosted_domain")
    if hosted_domain and not _claim_is(extra_data, "hd", hosted_domain):
        return Refusal(
            "hosted_domain",
            f"This Google account is not part of the {hosted_domain} Google Workspace. Sign in "
            "with your work account.",
        )
    domain = email_domain(email)
    for rule in (allowed_domains, list(app_settings.get("allowed_domains") or [])):
        if rule and domain not in rule:
            return Refusal(
                "domain",
                f"Sign-in with {email} is not allowed: only addresses at "
                f"{', '.join(rule)} may use this assistant.",
            )
    claim = app_settings.get("groups_claim")
    if claim and claim not in claims and _groups_overage(claims, claim):
        return Refusal(
            "groups_overage",
            "Your account is in more groups than your identity provider can list in a sign-in, "
            "so your access cannot be determined. Ask your administrator to send only the groups "
            "assigned to this app.",
        )
    return None


def _groups_overage(claims: Mapping, claim: str) -> bool:
    # Entra ID replaces a too-long groups claim by a pointer to Microsoft Graph.
    names = claims.get("_claim_names")
    return isinstance(names, Mapping) and claim in names


def saml_claims(attributes: Mapping, app_settings: Mapping, *, email: str = "") -> dict:
    """A SAML sign-in's attributes as the claims the rules above read.

    ``attributes`` is allauth's ``{name: [values]}``; ``email`` is the address allauth took
    from them (or from an e-mail NameID), used when no configured attribute carries one.
    The groups keep the attribute's name as their claim name (``groups_claim``).
    """

    def first(names) -> str:
        for name in names:
            values = attributes.get(name)
            if isinstance(values, list):
                for value in values:
                    if isinstance(value, str) and value.strip():
                        return value.strip()
        return ""

    mapping = app_settings.get("attribute_mapping") or {}
    claims: dict = {}
    address = first(mapping.get("email") or SAML_EMAIL_ATTRIBUTES) or email
    if address:
        claims["email"] = address
    for claim, names in (
        ("name", app_settings.get("name_attributes") or SAML_NAME_ATTRIBUTES),
        ("given_name", mapping.get("first_name") or SAML_GIVEN_NAME_ATTRIBUTES),
        ("family_name", mapping.get("last_name") or SAML_FAMILY_NAME_ATTRIBUTES),
    ):
        value = first(names)
        if value:
            claims[claim] = value
    groups_attribute = app_settings.get("groups_claim")
    if groups_attribute and groups_attribute in attributes:
        claims[groups_attribute] = attributes[groups_attribute]
    elif groups_attribute and ENTRA_GROUPS_LINK_ATTRIBUTE in attributes:
        # The same shape as Entra's OIDC overage, so sign_in_refusal treats both alike.
        claims["_claim_names"] = {groups_attribute: "src1"}
    return claims


def groups_from_claims(extra_data: Mapping, claim: str) -> list[str] | None:
    """The group names of one sign-in, or ``None`` when group sync is off (empty ``claim``).

    A missing claim means "no groups": several providers omit an empty claim, and a person
    removed from their last group must lose it. A single string counts as one group.
    """
    if not claim:
        return None
    value = merged_claims(extra_data).get(claim)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        return []
    names = []
    for item in value:
        if isinstance(item, str) and item.strip():
            names.append(item.strip())
    return sorted(set(names))


def display_name(extra_data: Mapping) -> str:
    claims = merged_claims(extra_data)
    name = claims.get("name")
    if not isinstance(name, str) or not name.strip():
        parts = [claims.get("given_name"), claims.get("family_name")]
        name = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    return (name or "").strip()[:200]


def sso_granted_groups(extra_data: Mapping) -> list[str]:
    """The groups the last SSO sign-in through this account granted (see SSO_STATE_KEY)."""
    state = extra_data.get(SSO_STATE_KEY)
    groups = state.get("groups") if isinstance(state, Mapping) else None
    return [g for g in groups if isinstance(g, str)] if isinstance(groups, list) else []


@dataclass(frozen=True)
class GroupRules:
    """What one provider's groups claim may do: which Django groups its values become, and
    which of its values (as sent, before the prefix) make a person staff or admin.

    Built from the provider's app settings (see sso_config._resolve_group_rules), so one
    provider's claim never reaches another provider's groups or rights.
    """

    provider_id: str = ""
    prefix: str = ""
    staff_groups: frozenset[str] = frozenset()
    admin_groups: frozenset[str] = frozenset()

    @classmethod
    def from_app_settings(cls, provider_id: str, app_settings: Mapping) -> GroupRules:
        def names(key: str) -> frozenset[str]:
            value = app_settings.get(key)
            return (
                frozenset(v for v in value if isinstance(v, str))
                if isinstance(value, list)
                else frozenset()
            )

        prefix = app_settings.get("group_prefix")
        return cls(
            provider_id=provider_id,
            prefix=prefix if isinstance(prefix, str) else "",
            staff_groups=names("staff_groups"),
            admin_groups=names("admin_groups"),
        )

    @property
    def decides_flags(self) -> bool:
        """With neither staff nor admin groups, this provider leaves both flags alone."""
        return bool(self.staff_groups or self.admin_groups)

    def django_group_names(self, claim_groups: list[str]) -> list[str]:
        return [f"{self.prefix}{name}" for name in claim_groups]

    def flags(self, claim_groups: list[str]) -> tuple[bool, bool]:
        """``(is_staff, is_superuser)`` as this provider's claim grants them."""
        names = set(claim_groups)
        is_superuser = bool(names & self.admin_groups)
        return is_superuser or bool(names & self.staff_groups), is_superuser


def sso_granted_flags(extra_data: Mapping) -> tuple[bool, bool]:
    """``(is_staff, is_superuser)`` the last sign-in through this account granted, if its
    provider decides the flags (else both False; see services.user_sync_from_sso)."""
    state = extra_data.get(SSO_STATE_KEY)
    flags = state.get("flags") if isinstance(state, Mapping) else None
    if not isinstance(flags, Mapping):
        return False, False
    return flags.get("is_staff") is True, flags.get("is_superuser") is True
