"""Answers as Slack messages: mrkdwn text, numbered sources as links, feedback buttons."""

from __future__ import annotations

import re

from django.conf import settings

MAX_TEXT = 2900  # a section block's text is limited to 3000 characters

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+)$", re.MULTILINE)


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str) -> str:
    """The Markdown the model writes, in Slack's mrkdwn (no HTML, no @channel pings)."""
    text = escape(markdown)
    text = _HEADING.sub(lambda m: f"*{m.group(1)}*", text)
    text = _BOLD.sub(lambda m: f"*{m.group(1)}*", text)
    text = _LINK.sub(lambda m: f"<{m.group(2)}|{m.group(1)}>", text)
    return text


def source_link(source: dict) -> str:
    url = source.get("url") or ""
    if not url.startswith(("http://", "https://")):
        url = f"{settings.APP_BASE_URL.rstrip('/')}/knowledge/sources/{source['source_id']}/"
    label = escape(source.get("title") or source.get("source_name") or "source")
    where = " — ".join(
        escape(part) for part in (source.get("heading") or "", f"page {source['page']}" if source.get("page") else "") if part
    )
    return f"[{source['n']}] <{url}|{label}>" + (f" ({where})" if where else "")


def answer_blocks(
    *, text: str, sources: list[dict], message_id: str | None, note: str = ""
) -> list[dict]:
    body = to_mrkdwn(text) or "_(no answer)_"
    if len(body) > MAX_TEXT:
        body = body[:MAX_TEXT] + "…"
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": body}}]
    if sources:
        lines = "\n".join(source_link(s) for s in sources)[:MAX_TEXT]
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": lines}]})
    if note:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    if message_id:
        blocks.append(
            {
                "type": "actions",
                "block_id": "feedback",
                "elements": [
                    {"type": "button", "action_id": "feedback_up", "text": {"type": "plain_text", "text": "👍 Helpful"},
                     "value": f"{message_id}:1"},
                    {"type": "button", "action_id": "feedback_down", "text": {"type": "plain_text", "text": "👎 Not helpful"},
                     "value": f"{message_id}:-1"},
                ],
            }
        )
    return blocks


def strip_mention(text: str) -> str:
    """``<@U123> how do I ...`` -> ``how do I ...``"""
    return re.sub(r"<@[A-Z0-9]+>", "", text).strip()
