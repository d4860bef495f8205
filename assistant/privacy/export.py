"""A person's own data as one JSON document (the account page's "Download your data").

Everything is read for ``user`` only (every query filters on them). The document is produced
piece by piece: the account, memory, feedback, tokens and Slack identities first, then the
conversations ``PAGE`` at a time by (created_at, id), so a long history is never held in memory
whole, and each page's queries are a fixed few (conversations, their messages, their
citations, the passages' access). Never included: token hashes, embeddings, other people's
feedback, and the text of a cited passage the person can no longer read (its citation says
``"unavailable": true``, as in the chat).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Prefetch, Q
from django.utils import timezone

from accounts.models import AccessToken, SlackIdentity
from assistant import selectors
from assistant.models import Citation, Conversation, Feedback, MemoryItem, Message
from assistant.project.threads import db

FORMAT = "assistant-personal-data"
VERSION = 1
PAGE = 50  # conversations per read


def _dumps(value) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)


def _account(user) -> dict:
    return {
        "email": user.email,
        "full_name": user.full_name,
        "date_joined": user.date_joined,
        "last_login": user.last_login,
        "groups": sorted(user.groups.values_list("name", flat=True)),
    }


def _memory(user) -> list[dict]:
    return [
        {
            "text": item.text,
            "kind": item.kind,
            "origin": item.origin,
            "learned_from_message": item.source_message_id,
            "created_at": item.created_at,
            "updated_at": item.updated_at,
        }
        for item in MemoryItem.objects.filter(owner=user).order_by("created_at", "pk")
    ]


def _feedback(user) -> list[dict]:
    rows = Feedback.objects.filter(user=user).order_by("created_at", "pk")
    return [
        {
            "message": row.message_id,
            "rating": "helpful" if row.rating == Feedback.Rating.UP else "not helpful",
            "comment": row.comment,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
        for row in rows
    ]


def _tokens(user) -> list[dict]:
    # Names and prefixes only: the hash is a credential's fingerprint, not the person's data.
    rows = AccessToken.objects.filter(owner=user).order_by("created_at", "pk")
    return [
        {
            "name": token.name,
            "prefix": token.prefix,
            "created_at": token.created_at,
            "last_used_at": token.last_used_at,
            "expires_at": token.expires_at,
            "revoked_at": token.revoked_at,
        }
        for token in rows
    ]


def _slack(user) -> list[dict]:
    return [
        {
            "team_id": identity.team_id,
            "slack_user_id": identity.slack_user_id,
            "display_name": identity.display_name,
            "email": identity.email,
            "linked_at": identity.linked_at,
        }
        for identity in SlackIdentity.objects.filter(user=user).order_by("pk")
    ]


def export_head(user) -> str:
    """The document up to the opening of its ``conversations`` list."""
    head = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": timezone.now(),
        "account": _account(user),
        "memory": _memory(user),
        "feedback": _feedback(user),
        "access_tokens": _tokens(user),
        "slack_identities": _slack(user),
    }
    return _dumps(head)[:-1] + ', "conversations": ['


def _citation(citation: Citation, readable: bool) -> dict:
    if not readable:
        return {"number": citation.number, "unavailable": True}
    return {
        "number": citation.number,
        "quote": citation.quote,
        "document_title": citation.document_title,
        "source_name": citation.source_name,
        "source_url": citation.source_url,
        "heading": citation.heading,
        "page": citation.page,
    }


def conversation_page(user, after: tuple[datetime, str] | None) -> tuple[list[dict], tuple | None]:
    """The next ``PAGE`` of ``user``'s conversations after the key ``after``, each with its
    messages and their citations; and the key to continue from (``None``: the end)."""
    rows = Conversation.objects.filter(owner=user).order_by("created_at", "id")
    if after is not None:
        created, pk = after
        rows = rows.filter(Q(created_at__gt=created) | Q(created_at=created, id__gt=pk))
    messages = Message.objects.order_by("created_at", "id").prefetch_related("citations")
    page = list(rows.prefetch_related(Prefetch("messages", queryset=messages))[:PAGE])
    if not page:
        return [], None
    all_messages = [m for c in page for m in c.messages.all()]
    access = selectors.passage_access_for(user=user, messages=all_messages)
    items = [
        {
            "id": str(conversation.id),
            "title": conversation.title,
            "origin": conversation.origin,
            "created_at": conversation.created_at,
            "updated_at": conversation.updated_at,
            "messages": [
                {
                    "id": str(message.id),
                    "role": message.role,
                    "content": message.content,
                    "status": message.status,
                    "superseded": message.superseded,
                    "reply_to": str(message.reply_to_id) if message.reply_to_id else None,
                    "created_at": message.created_at,
                    "citations": [
                        _citation(c, access.readable(c.source_id, c.collection_id))
                        for c in message.citations.all()
                    ],
                }
                for message in conversation.messages.all()
            ],
        }
        for conversation in page
    ]
    last = page[-1]
    return items, ((last.created_at, last.id) if len(page) == PAGE else None)


async def export_stream(user) -> AsyncIterator[str]:
    """The whole document in pieces, each read in its own short ORM call."""
    yield await db(export_head)(user)
    after, first = None, True
    while True:
        items, after = await db(conversation_page)(user, after)
        for item in items:
            yield ("" if first else ",") + _dumps(item)
            first = False
        if after is None:
            break
    yield "]}"
