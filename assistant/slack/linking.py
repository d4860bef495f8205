"""Which account a Slack user acts as, and the one-time link that binds them on proof.

A Slack identity is bound to an account only on proof:

* automatically, when Slack vouches for the person: a confirmed email, a full member of the
  workspace we are installed in (not deleted, not a bot, not a guest, not a stranger from
  another organisation), a domain SSO_ALLOWED_DOMAINS allows, and an active account with that
  email that is not a superuser (a superuser always proves it by signing in);
* otherwise by the person opening a signed one-time link, signing in and confirming.

Until then the Slack user acts as nobody, or (``SLACK_UNLINKED_USERS=public``) as a provisional
account of their own that only sees knowledge open to everyone: never as an existing person.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from accounts.audit import Action, audit_record
from accounts.models import SlackIdentity
from accounts.selectors import active_account_for_email
from accounts.services import provisional_account_create
from assistant.slack import client

LINK_SALT = "assistant.slack.link"
LINK_MAX_AGE = 30 * 60  # seconds: a link is for now, not for later
PROVISIONAL_DOMAIN = "slack.invalid"
_SLACK_ID = re.compile(r"[A-Z0-9]{1,32}")


class LinkError(Exception):
    """A link that cannot be used; ``status`` is the HTTP status of the page that says so."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Mapped:
    """Who a Slack user acts as (``None``: nobody), and the link to offer when not linked."""

    user: object | None
    link_url: str = ""


def provisional_email(team_id: str, slack_user_id: str) -> str:
    return f"slack+{team_id}-{slack_user_id}@{PROVISIONAL_DOMAIN}".lower()


def is_provisional(identity: SlackIdentity) -> bool:
    return bool(identity.user_id) and identity.user.email == provisional_email(
        identity.team_id, identity.slack_user_id
    )


def account_for_slack_user(*, team_id: str, slack_user_id: str) -> Mapped:
    """The account a Slack user acts as. Calls Slack (``users.info``) when not linked yet,
    so it must not run inside a transaction."""
    if not (_SLACK_ID.fullmatch(team_id or "") and _SLACK_ID.fullmatch(slack_user_id or "")):
        return Mapped(None)
    identity, _ = SlackIdentity.objects.select_related("user").get_or_create(
        team_id=team_id, slack_user_id=slack_user_id
    )
    if identity.linked_at and identity.user_id and identity.user.is_active:
        return Mapped(identity.user)
    info = client.user_info(slack_user_id)
    reason, account = _automatic_link_refusal(team_id=team_id, info=info)
    with transaction.atomic():
        identity = (
            SlackIdentity.objects.select_for_update(of=("self",))
            .select_related("user")
            .get(pk=identity.pk)
        )
        if identity.linked_at and identity.user_id and identity.user.is_active:
            return Mapped(identity.user)  # linked meanwhile (the link page, another delivery)
        identity.email, identity.display_name = info.email[:254], info.name[:200]
        detail = {"team": team_id, "slack_user_id": slack_user_id}
        if reason is None:
            _bind(identity, account, how=SlackIdentity.LinkedHow.EMAIL)
            audit_record(
                actor=None,
                action=Action.SLACK_LINKED,
                target=identity,
                subject=account,
                detail={**detail, "how": "email"},
            )
            return Mapped(account)
        # A link made before these rules (``user`` without ``linked_at``) is dropped unless it
        # is this identity's own provisional account.
        if identity.user_id and not is_provisional(identity):
            identity.user, identity.linked_at, identity.linked_how = None, None, ""
        identity.link_nonce = secrets.token_urlsafe(24)
        user = _provisional_account(identity) if settings.SLACK_UNLINKED_USERS == "public" else None
        identity.save()
        audit_record(
            actor=None,
            action=Action.SLACK_LINK_REFUSED,
            target=identity,
            subject=account,
            detail={**detail, "reason": reason},
        )
    return Mapped(user, link_url(identity))


def _automatic_link_refusal(*, team_id: str, info: client.SlackUser):
    """Why Slack's word is not enough to link this person (``None``: it is), and the account
    their email names, if any."""
    if info.deleted:
        return "deleted", None
    if info.is_bot:
        return "bot", None
    if info.is_stranger:
        return "stranger", None
    if info.is_guest:
        return "guest", None
    if not info.team_id or info.team_id != team_id:
        return "other_team", None
    if team_id != client.installed_team_id():
        return "other_workspace", None
    if "@" not in info.email:
        return "no_email", None
    if not info.email_confirmed:
        return "email_unconfirmed", None
    allowed = settings.SSO_ALLOWED_DOMAINS
    if allowed and info.email.rpartition("@")[2] not in allowed:
        return "domain", None
    account = active_account_for_email(info.email, excluding_domain=PROVISIONAL_DOMAIN)
    if account is None:
        return "no_account", None
    if account.is_superuser:
        return "superuser", account
    return None, account


def _bind(identity: SlackIdentity, user, *, how: str) -> None:
    provisional = identity.user if is_provisional(identity) else None
    identity.user, identity.linked_at, identity.linked_how, identity.link_nonce = (
        user,
        timezone.now(),
        how,
        "",
    )
    identity.save()
    if provisional is not None and provisional.pk != user.pk:
        # Its public-only stand-in is no longer anyone's.
        type(provisional).objects.filter(pk=provisional.pk).update(is_active=False)


def _provisional_account(identity: SlackIdentity):
    """This Slack user's own public-only account: created once, never an existing one."""
    if is_provisional(identity):
        return identity.user
    user = provisional_account_create(
        email=provisional_email(identity.team_id, identity.slack_user_id),
        full_name=identity.display_name,
    )
    if user is None:  # someone else's account already holds the address: never attach to it
        return None
    identity.user, identity.linked_how = user, SlackIdentity.LinkedHow.PROVISIONAL
    return user


# --- the link page -----------------------------------------------------------------------------


def link_url(identity: SlackIdentity) -> str:
    token = signing.dumps(
        {"t": identity.team_id, "u": identity.slack_user_id, "n": identity.link_nonce},
        salt=LINK_SALT,
    )
    return settings.APP_BASE_URL.rstrip("/") + reverse("slack-link", args=[token])


def identity_for_link(*, token: str, for_update: bool = False) -> SlackIdentity:
    """The identity a link may still bind, or ``LinkError`` (expired, tampered, used)."""
    try:
        data = signing.loads(token[:1000], salt=LINK_SALT, max_age=LINK_MAX_AGE)
    except signing.SignatureExpired:
        raise LinkError(
            "This link has expired. Mention the assistant in Slack again to get a new one.", 410
        ) from None
    except signing.BadSignature:
        raise LinkError("This link is not valid.", 400) from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str) and data[k] for k in "tun"
    ):
        raise LinkError("This link is not valid.", 400)
    identities = SlackIdentity.objects.select_related("user")
    if for_update:
        identities = identities.select_for_update(of=("self",))
    identity = identities.filter(team_id=data["t"], slack_user_id=data["u"]).first()
    if (
        identity is None
        or not identity.link_nonce
        or not constant_time_compare(identity.link_nonce, data["n"])
    ):
        raise LinkError(
            "This link was already used or replaced by a newer one. Mention the assistant in Slack "
            "again to get a new one.",
            410,
        )
    if identity.linked_at and identity.user_id:
        raise LinkError("This Slack account is already linked to an account.", 409)
    return identity


@transaction.atomic
def link_confirm(*, user, token: str) -> SlackIdentity:
    """Binds the link's Slack identity to ``user``, who signed in to prove it. Once only."""
    identity = identity_for_link(token=token, for_update=True)
    _bind(identity, user, how=SlackIdentity.LinkedHow.LINK)
    audit_record(
        actor=user,
        action=Action.SLACK_LINKED,
        target=identity,
        subject=user,
        detail={"team": identity.team_id, "slack_user_id": identity.slack_user_id, "how": "link"},
    )
    return identity
