"""allauth's documented extension points: who may sign in or up, and what a sign-in changes.

The rules themselves are in ``accounts/sso.py`` (pure) and ``accounts/services.py`` (writes);
these classes only connect them to allauth's flow:

1. ``SocialAccountAdapter.populate_user`` (before allauth looks the account up; a SAML
   sign-in's attributes are mapped to OIDC claim names here, see ``sso.saml_claims``),
2. ``SocialAccountAdapter.pre_social_login`` (refuse: e-mail, domain, tenant, hosted domain,
   an address of an existing account that this sign-in does not prove; allauth has looked the
   account up just before, by provider and subject, then by verified e-mail),
3. allauth signs the user in (creating them on first sign-in),
4. ``AccountAdapter.post_login`` (sync name, groups and staff flags; remember how to log out
   at the identity provider).
"""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import urlencode

import requests
from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailAddress
from allauth.account.utils import filter_users_by_email
from allauth.core import context
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.adapter import get_adapter as get_social_adapter
from allauth.socialaccount.models import SocialAccount, SocialApp
from allauth.socialaccount.providers.base import AuthProcess
from django.conf import settings
from django.core.exceptions import ValidationError
from django.shortcuts import render

from accounts import services, sso

logger = logging.getLogger(__name__)

# Set on the current request by the token-response hook; read in post_login.
_RAW_ID_TOKEN_ATTR = "_assistant_sso_raw_id_token"  # noqa: S105 - an attribute name


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request) -> bool:
        return settings.ACCOUNT_ALLOW_SIGNUPS and settings.ACCOUNT_LOCAL_LOGIN

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        # allauth invites an unknown address to sign up whether or not sign-up is open; a link
        # to the "closed" page would be a dead end, so it goes only while sign-up is open.
        if "signup_url" in context and not self.is_open_for_signup(context.get("request")):
            context = {**context, "signup_url": None}
        super().send_mail(template_prefix, email, context)

    def clean_email(self, email: str) -> str:
        """New local addresses (sign-up, adding an address) follow SSO_ALLOWED_DOMAINS too."""
        allowed = settings.SSO_ALLOWED_DOMAINS
        if allowed and email and sso.email_domain(email) not in allowed:
            raise ValidationError(
                f"Only addresses at {', '.join(allowed)} may be used here.", code="domain"
            )
        return email

    def post_login(self, request, user, **kwargs):
        response = super().post_login(request, user, **kwargs)
        sociallogin = (kwargs.get("signal_kwargs") or {}).get("sociallogin")
        if sociallogin is not None:
            _apply_sso_sign_in(request, user, sociallogin)
        else:
            request.session.pop(sso.SSO_LOGOUT_SESSION_KEY, None)
        return response

    def get_logout_redirect_url(self, request) -> str:
        """After logging out here, end the identity provider's session too, where it can.

        allauth asks for this URL *before* it clears the session, which is what lets us read
        the ID token kept at sign-in (RP-initiated logout, with ``id_token_hint``).
        """
        local_url = super().get_logout_redirect_url(request)
        info = request.session.get(sso.SSO_LOGOUT_SESSION_KEY)
        if not request.user.is_authenticated or not isinstance(info, dict):
            return local_url
        return (
            end_session_url(
                request,
                provider_id=info.get("provider_id", ""),
                id_token=info.get("id_token", ""),
                post_logout_redirect_uri=request.build_absolute_uri(local_url),
            )
            or local_url
        )


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request, sociallogin) -> bool:
        # Who may use the app is decided at the identity provider (app assignment) and by
        # the rules in pre_social_login; everyone they let through gets an account.
        return True

    def populate_user(self, request, sociallogin, data):
        user = super().populate_user(request, sociallogin, data)
        extra_data = sociallogin.account.extra_data
        app_settings = _app_settings(sociallogin)
        if app_settings.get("protocol") == "saml":
            # Kept in extra_data (allauth saves it with the account) so every rule below and
            # every later reader sees a SAML sign-in in the same claim names as an OIDC one.
            extra_data[sso.CLAIMS_KEY] = sso.saml_claims(
                extra_data, app_settings, email=data.get("email") or ""
            )
        user.full_name = sso.display_name(extra_data)
        # allauth signs into an existing account by e-mail only through addresses marked
        # verified (SocialLogin.lookup), and stores the flag with a new account. Set it by our
        # rule, both ways: asserted by the provider or trusted by the operator, else not (an
        # absent claim or a string "false" must never count as verified).
        verified = sso.email_links_existing_account(extra_data, app_settings)
        for address in sociallogin.email_addresses:
            address.verified = verified
        _carry_sso_state_forward(sociallogin)
        return user

    def can_authenticate_by_email(self, login, email) -> bool:
        """allauth asks this before signing a verified address into the account holding it.

        An account made by an earlier sign-in whose address was *not* proven belongs to
        whoever made it; a later sign-in proving the address must neither take it over nor
        share it, so it is refused (pre_social_login shows why) and the operator decides.
        """
        if not super().can_authenticate_by_email(login, email):
            return False
        return not EmailAddress.objects.filter(
            email__iexact=email, verified=False, user__socialaccount__isnull=False
        ).exists()

    def pre_social_login(self, request, sociallogin) -> None:
        app_settings = _app_settings(sociallogin)
        refusal = sso.sign_in_refusal(
            sociallogin.account.extra_data,
            app_settings=app_settings,
            allowed_domains=settings.SSO_ALLOWED_DOMAINS,
        ) or _email_taken_refusal(sociallogin, app_settings)
        if refusal is None:
            return
        email = sso.merged_claims(sociallogin.account.extra_data).get("email") or ""
        logger.warning(
            "SSO sign-in refused",
            extra={
                "provider": sociallogin.account.provider,
                "reason": refusal.code,
                "email_domain": sso.email_domain(email) if isinstance(email, str) else "",
            },
        )
        response = render(
            request,
            "accounts/sso_refused.html",
            {"refusal": refusal, "provider_name": sociallogin.provider.name},
            status=403,
        )
        raise ImmediateHttpResponse(response)

    def on_authentication_error(
        self, request, provider, error=None, exception=None, extra_context=None
    ) -> None:
        logger.warning(
            "SSO sign-in failed",
            extra={
                "provider": getattr(getattr(provider, "app", None), "provider_id", ""),
                "error": str(error or ""),
                "exception": type(exception).__name__ if exception else "",
            },
        )

    def get_requests_session(self):
        """Every call allauth makes to an identity provider goes through this session.

        The hook keeps the raw ID token from the token response on the current request,
        because allauth keeps only its decoded claims and logout at the identity provider
        needs the token itself (``id_token_hint``).
        """
        session = super().get_requests_session()
        session.hooks["response"].append(_remember_raw_id_token)
        return session


def _email_taken_refusal(sociallogin, app_settings: dict) -> sso.Refusal | None:
    """Refuses a new identity whose e-mail already belongs to an account here.

    allauth has already looked the identity up (``SocialLogin.lookup`` runs before this
    hook): by provider and subject, then by *verified* e-mail. Still without an account, the
    address did not prove ownership (or e-mail sign-in is off): without this check, allauth's
    sign-up would stop at a form about a taken address. Nothing is linked or created.
    """
    if sociallogin.is_existing or sociallogin.state.get("process") == AuthProcess.CONNECT:
        return None  # connecting: the person signed in here is the proof
    addresses = {a.email for a in sociallogin.email_addresses if a.email}
    if sociallogin.user.email:
        addresses.add(sociallogin.user.email)
    taken = sorted(e for e in addresses if filter_users_by_email(e))
    if not taken:
        return None
    provider = sociallogin.provider.name
    if not sso.email_links_existing_account(sociallogin.account.extra_data, app_settings):
        reason = (
            f"{provider} does not confirm that this address is verified, so it does not prove "
            "that the account is yours"
        )
    else:
        reason = "this sign-in cannot be linked to that account automatically"
    return sso.Refusal(
        "email_taken",
        f"An account for {taken[0]} already exists here, and {reason}. Ask the people who run "
        "this assistant to link your sign-in to that account (or to have your identity "
        "provider send a verified address).",
    )


def _remember_raw_id_token(response, *args, **kwargs):
    request = context.request
    if request is None or response.request.method != "POST" or not response.ok:
        return response
    if "json" not in response.headers.get("content-type", ""):
        return response
    try:
        token = response.json().get("id_token")
    except (ValueError, AttributeError):
        return response
    if isinstance(token, str):
        setattr(request, _RAW_ID_TOKEN_ATTR, token)
    return response


def _carry_sso_state_forward(sociallogin) -> None:
    """Keeps what the previous sign-in granted across allauth's refresh of extra_data.

    allauth overwrites ``extra_data`` with the new claims as soon as it finds the account,
    before any later hook runs; this runs earlier, so the groups previously granted by SSO
    survive until ``services.user_sync_from_sso`` compares them with the new claims.
    """
    account = sociallogin.account
    previous = (
        SocialAccount.objects.filter(provider=account.provider, uid=account.uid)
        .values_list("extra_data", flat=True)
        .first()
    )
    if isinstance(previous, dict) and sso.SSO_STATE_KEY in previous:
        account.extra_data[sso.SSO_STATE_KEY] = previous[sso.SSO_STATE_KEY]
    else:
        account.extra_data.pop(sso.SSO_STATE_KEY, None)


def _app_settings(sociallogin) -> dict:
    app = sociallogin.provider.app
    return app.settings if app and isinstance(app.settings, dict) else {}


def _apply_sso_sign_in(request, user, sociallogin) -> None:
    account = sociallogin.account
    app_settings = _app_settings(sociallogin)
    extra_data = account.extra_data or {}
    services.user_sync_from_sso(
        user=user,
        social_account=account,
        name=sso.display_name(extra_data),
        groups=sso.groups_from_claims(extra_data, app_settings.get("groups_claim", "")),
        rules=sso.GroupRules.from_app_settings(account.provider, app_settings),
    )
    if app_settings.get("protocol") == "saml":
        # No single logout for SAML (yet): signing out ends the session here only.
        request.session.pop(sso.SSO_LOGOUT_SESSION_KEY, None)
        return
    raw = getattr(request, _RAW_ID_TOKEN_ATTR, "")
    if raw and _payload(raw) != extra_data.get("id_token"):
        raw = ""  # not the token allauth verified: do not hand it to anyone
    request.session[sso.SSO_LOGOUT_SESSION_KEY] = {
        "provider_id": account.provider,
        "id_token": raw,
    }


def _payload(jwt: str) -> dict | None:
    try:
        part = jwt.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return None


def end_session_url(
    request, *, provider_id: str, id_token: str, post_logout_redirect_uri: str
) -> str | None:
    """The identity provider's logout URL (RP-initiated logout 1.0), or ``None``.

    ``None`` when the provider is gone from the settings, has ``idp_logout`` off, or
    publishes no ``end_session_endpoint`` (Google, for one); the caller then only logs out
    locally. ``post_logout_redirect_uri`` must be registered at the provider.
    """
    adapter = get_social_adapter(request)
    try:
        provider = adapter.get_provider(request, provider_id)
    except SocialApp.DoesNotExist:
        return None
    if not provider.app.settings.get("idp_logout", True):
        return None
    try:
        endpoint = provider.get_oauth2_adapter(request).openid_config.get("end_session_endpoint")
    except (requests.RequestException, ValueError):
        logger.warning("SSO discovery failed at logout", extra={"provider": provider_id})
        return None
    if not endpoint:
        return None
    params = {
        "client_id": provider.app.client_id,
        "post_logout_redirect_uri": post_logout_redirect_uri,
    }
    if id_token:
        params["id_token_hint"] = id_token
    separator = "&" if "?" in endpoint else "?"
    return f"{endpoint}{separator}{urlencode(params)}"
