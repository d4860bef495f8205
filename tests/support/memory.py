"""Turns to learn from: a question a person wrote and the complete answer to it."""

from __future__ import annotations

import json

from assistant.models import Conversation, Message
from tests.support.openai_server import Reply


def answered_turn(user, said: str, answer_text: str = "Use zstd -19 [1].") -> Message:
    """A conversation of ``user`` holding ``said`` and its complete answer: the answer."""
    conversation = Conversation.objects.create(owner=user, title="Compression")
    question = Message.objects.create(conversation=conversation, role="user", content=said)
    return Message.objects.create(
        conversation=conversation,
        role="assistant",
        content=answer_text,
        reply_to=question,
        status=Message.Status.COMPLETE,
    )


def extraction_reply(*facts: str) -> Reply:
    """The model's answer to a memory extraction request, proposing ``facts``."""
    return Reply(tokens=[json.dumps({"facts": list(facts)})])
