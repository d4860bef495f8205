"""Erasing a person: their account and everything that is theirs alone.

Deleted: conversations (messages, citations, feedback on them), memory items and memory
settings, feedback they gave, personal access tokens, Slack identities and the Slack deliveries
they sent (which carry their words), their SSO links and the account itself, and the
public-only account that stood in for them in Slack before they linked it (with what they asked
there). Knowledge they added belongs to the company: their sources are kept and
handed to ``heir`` if given (the command's ``--reassign-to``), else to the admin who erases them
(the command with no ``--reassign-to``: to no owner), unless ``delete_sources``,
which deletes the sources with their uploaded originals, as a source deletion does.

The audit trail keeps one ``user.erased`` event with counts, the account's id and an HMAC of
its email (keyed with ``SECRET_KEY``): enough to answer "was this address erased?" by
computing it again, never the address or anything the person wrote. Earlier audit events
stay as the evidence they are, until ``RETENTION_AUDIT_DAYS`` removes them.

Refused: erasing the last active superuser (nobody could administer the site), and an admin
erasing their own account from the admin (their session would end mid-action).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils.crypto import salted_hmac

from accounts.audit import Action, audit_record
from accounts.models import AccessToken, SlackIdentity
from assistant.models import Conversation, Feedback, MemoryItem, MemorySettings, Message
from assistant.privacy.retention import delete_in_batches
from assistant.slack.linking import provisional_email
from assistant.slack.models import SlackEventReceipt
from knowledge.models import Source
from knowledge.services import source_delete_for_site

logger = logging.getLogger("assistant.privacy")

BATCH_SIZE = 200  # conversations per transaction while erasing a long history


class ErasureRefused(Exception):
    """Why a person may not be erased now; ``str()`` is written for the admin to read."""


@dataclass(frozen=True)
class ErasureCounts:
    conversations: int = 0
    messages: int = 0
    memory_items: int = 0
    feedback: int = 0
    tokens: int = 0
    slack_identities: int = 0
    slack_deliveries: int = 0
    sources_kept: int = 0
    sources_deleted: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def describe(self) -> str:
        parts = [
            f"{self.conversations} conversation(s) with {self.messages} message(s)",
            f"{self.memory_items} memory item(s)",
            f"{self.feedback} feedback",
            f"{self.tokens} access token(s)",
            f"{self.slack_identities} Slack identit{'y' if self.slack_identities == 1 else 'ies'}",
            f"{self.slack_deliveries} Slack message(s) received",
        ]
        if self.sources_deleted:
            parts.append(f"{self.sources_deleted} source(s) with their files")
        return ", ".join(parts)


def email_hmac(email: str) -> str:
    """What the audit trail keeps of an erased address (see the module's docstring)."""
    return salted_hmac("assistant.privacy.erased-email", email.strip().lower()).hexdigest()


def user_find(*, email: str):
    """The account with this address, active or not (case-insensitive), or ``None``."""
    return get_user_model().objects.filter(email__iexact=email.strip()).first()


def stand_ins_of(user) -> list:
    """The public-only accounts that stood in for this person in Slack before they linked
    (``assistant.slack.linking``): switched off at the link, but still holding what they asked
    in Slack then. Erasing the person erases them too."""
    addresses = [
        provisional_email(team, slack_user)
        for team, slack_user in SlackIdentity.objects.filter(user=user).values_list(
            "team_id", "slack_user_id"
        )
    ]
    if not addresses:
        return []
    return list(get_user_model().objects.filter(email__in=addresses).exclude(pk=user.pk))


def erasure_preview(*, user) -> ErasureCounts:
    """What erasing ``user`` would delete (and the sources it would keep)."""
    people = [user, *stand_ins_of(user)]
    return ErasureCounts(
        conversations=Conversation.objects.filter(owner__in=people).count(),
        messages=Message.objects.filter(conversation__owner__in=people).count(),
        memory_items=MemoryItem.objects.filter(owner__in=people).count(),
        feedback=Feedback.objects.filter(user__in=people).count(),
        tokens=AccessToken.objects.filter(owner__in=people).count(),
        slack_identities=SlackIdentity.objects.filter(user__in=people).count(),
        slack_deliveries=SlackEventReceipt.objects.filter(_deliveries_from(user)).count(),
        sources_kept=Source.objects.filter(owner__in=people).count(),
    )


def erasure_check(*, actor, user) -> None:
    """Raises ``ErasureRefused`` when ``actor`` (``None``: an operator's command) may not
    erase ``user``."""
    if actor is not None and actor.pk == user.pk:
        raise ErasureRefused(
            "You cannot erase your own account from here: ask another administrator, "
            "or run manage.py erase-user."
        )
    if user.is_superuser and user.is_active:
        others = get_user_model().objects.filter(is_superuser=True, is_active=True)
        if not others.exclude(pk=user.pk).exists():
            raise ErasureRefused(
                f"{user.email} is the last active administrator: erasing them would leave "
                "nobody who can run this site. Make someone else an administrator first."
            )


def user_erase(*, actor, user, delete_sources: bool = False, heir=None) -> ErasureCounts:
    """Erases ``user`` (see the module's docstring) and returns what was removed. Their sources
    go to ``heir`` when given (an active account other than ``user``), else to ``actor``.

    The account is switched off first (its sessions and sockets stop at their next request),
    then its conversations go in batches, then everything else with the account in one
    transaction, audited there. Run again after a failure, it carries on where it stopped.
    """
    erasure_check(actor=actor, user=user)
    if heir is not None and (heir.pk == user.pk or not heir.is_active):
        raise ErasureRefused(
            "Their sources must go to another active account, not to the person being erased."
        )
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    stand_ins = stand_ins_of(user)
    people = [user, *stand_ins]
    # Their feedback is mostly on their own answers, which go with the conversations: count
    # it first, so the report says what went rather than what was left.
    feedback_given = Feedback.objects.filter(user__in=people).count()
    conversations, messages, _ = delete_in_batches(
        Conversation.objects.filter(owner__in=people), batch_size=BATCH_SIZE
    )
    with transaction.atomic():
        memory_items = _delete(MemoryItem.objects.filter(owner__in=people))
        _delete(MemorySettings.objects.filter(user__in=people))
        _delete(Feedback.objects.filter(user__in=people))
        tokens = _delete(AccessToken.objects.filter(owner__in=people))
        slack_deliveries = _delete(SlackEventReceipt.objects.filter(_deliveries_from(user)))
        slack_identities = _delete(SlackIdentity.objects.filter(user__in=people))
        owned = Source.objects.filter(owner__in=people).select_related("collection")
        if delete_sources:
            doomed = list(owned)
            for source in doomed:
                source_delete_for_site(actor=actor, source=source)
            sources_deleted = len(doomed)
            sources_kept = 0
        else:
            sources_deleted = 0
            sources_kept = owned.update(owner=heir or actor)
        counts = ErasureCounts(
            conversations=conversations,
            messages=messages,
            memory_items=memory_items,
            feedback=feedback_given,
            tokens=tokens,
            slack_identities=slack_identities,
            slack_deliveries=slack_deliveries,
            sources_kept=sources_kept,
            sources_deleted=sources_deleted,
        )
        audit_record(
            actor=actor,
            action=Action.USER_ERASED,
            detail={
                "user_id": user.pk,
                "email_hmac": email_hmac(user.email),
                "counts": counts.as_dict(),
                "sources": "deleted" if delete_sources else "kept",
                "sources_to": None if delete_sources else getattr(heir or actor, "pk", None),
            },
        )
        user_id = user.pk
        for stand_in in stand_ins:
            stand_in.delete()
        user.delete()  # the rest cascades: SSO links, email addresses, group memberships
    logger.info("user erased", extra={"user_id": user_id, "counts": counts.as_dict()})
    return counts


def _deliveries_from(user) -> Q:
    """The Slack deliveries this person sent (they carry what they wrote): an event's
    ``event.user``, a slash command's ``user_id``, in the workspace of one of their identities."""
    found = Q(pk__in=[])
    for team, slack_user in SlackIdentity.objects.filter(user=user).values_list(
        "team_id", "slack_user_id"
    ):
        found |= Q(payload__team_id=team, payload__event__user=slack_user)
        found |= Q(payload__team_id=team, payload__user_id=slack_user)
    return found


def _delete(rows) -> int:
    """How many rows of the queryset's own model went (cascaded rows are not counted)."""
    _, per_model = rows.delete()
    return per_model.get(rows.model._meta.label, 0)
