"""The audit trail: one function every layer calls where trust matters.

Rows are written in the caller's transaction, so an action that rolls back leaves no record
of having happened, and one that commits always has its record.
"""

from __future__ import annotations

import logging

from accounts.models import AuditEvent

logger = logging.getLogger("assistant.audit")

Action = AuditEvent.Action


def audit_record(
    *,
    actor,
    action: str,
    target=None,
    subject=None,
    detail: dict | None = None,
    target_repr: str | None = None,
) -> AuditEvent:
    """Records that ``actor`` (a user, or ``None`` for the system) did ``action`` to ``target``
    (a model instance, or ``None``), about ``subject`` (the person concerned, if any).

    ``target_repr`` replaces ``str(target)`` where that would copy a person's words (a
    conversation's title, a memory item's text) into a trail that outlives them."""
    actor = actor if getattr(actor, "is_authenticated", False) else None
    event = AuditEvent.objects.create(
        actor=actor,
        actor_email=getattr(actor, "email", "") or "",
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=(
            target_repr if target_repr is not None else str(target) if target is not None else ""
        )[:300],
        subject=subject,
        detail=detail or {},
    )
    logger.info(
        "audit",
        extra={
            "action": action,
            "actor_id": getattr(actor, "pk", None),
            "target": f"{event.target_type}:{event.target_id}" if target is not None else None,
            "subject_id": getattr(subject, "pk", None),
        },
    )
    return event
