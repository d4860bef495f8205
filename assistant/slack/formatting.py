"""Answers as Slack messages: mrkdwn text, numbered sources as links, feedback buttons.

Everything we did not write ourselves (the model's answer, source titles, headings, URLs) is
hostile: Slack reads ``<...>`` as a control sequence (``<!channel>`` pings everyone, ``<@U1>``
mentions someone, ``<url|label>`` is a link). So all text is escaped by Slack's rules
(``&``, ``<``, ``>``), and the only ``<...>`` in a message are links built here from a URL
that cannot close the link early or start a label of its own.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from django.conf import settings

MAX_TEXT = 2900  # a section block's text is limited to 3000 characters

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+)$", re.MULTILINE)
# Characters that would end the URL part of ``<url|label>`` or the link itself, or that Slack
# would read as an entity; whitespace and control characters never belong in a URL either.
_URL_UNSAFE = re.compile(r"[|<>\"'\s\x00-\x1f\x7f]")


def escape(text: str) -> str:
    """Slack's escaping for message text: the three characters it reads as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def safe_url(url: str) -> str | None:
    """``url`` fit to stand inside ``<...|...>``, or ``None`` when it is not a web link."""
    url = url.strip()
    if not url.lower().startswith(("http://", "https://")):
        return None
    encoded = _URL_UNSAFE.sub(lambda m: quote(m.group(0), safe=""), url)
    return encoded.replace("&", "&amp;")


def link(url: str, label: str) -> str:
    """A Slack link, or the label alone (escaped) when the URL is not a web link."""
    text = escape(" ".join(label.replace("|", " ").split())) or "link"
    target = safe_url(url)
    return f"<{target}|{text}>" if target else text


def _inline(markdown: str) -> str:
    text = escape(markdown)
    text = _HEADING.sub(lambda m: f"*{m.group(1)}*", text)
    return _BOLD.sub(lambda m: f"*{m.group(1)}*", text)


def to_mrkdwn(markdown: str) -> str:
    """The Markdown the model writes, in Slack's mrkdwn (no HTML, no @channel pings).

    Links are taken out of the raw text first, so their URL and label are made safe on their
    own, and the text around them is escaped."""
    parts: list[str] = []
    position = 0
    for match in _LINK.finditer(markdown):
        parts.append(_inline(markdown[position : match.start()]))
        parts.append(link(match.group(2), match.group(1)))
        position = match.end()
    parts.append(_inline(markdown[position:]))
    return "".join(parts)


def truncate(text: str, limit: int = MAX_TEXT) -> str:
    """Cuts mrkdwn to ``limit`` without leaving half a link or half an entity behind."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    opened = cut.rfind("<")
    if opened > cut.rfind(">"):
        cut = cut[:opened]
    amp = cut.rfind("&")
    if amp > cut.rfind(";") and len(cut) - amp <= 5:
        cut = cut[:amp]
    return cut + "…"


def source_link(source: dict) -> str:
    url = str(source.get("url") or "")
    if safe_url(url) is None:
        url = f"{settings.APP_BASE_URL.rstrip('/')}/knowledge/sources/{int(source['source_id'])}/"
    label = str(source.get("title") or source.get("source_name") or "source")
    where = " — ".join(
        escape(str(part))
        for part in (
            source.get("heading") or "",
            f"page {source['page']}" if source.get("page") else "",
        )
        if part
    )
    return f"[{int(source['n'])}] {link(url, label)}" + (f" ({where})" if where else "")


def _source_lines(sources: list[dict]) -> str:
    """Whole lines only, as many as fit: a line cut in half could be half a link."""
    lines: list[str] = []
    used = 0
    for source in sources:
        line = source_link(source)
        if used + len(line) + 1 > MAX_TEXT:
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines)


def answer_blocks(
    *, text: str, sources: list[dict], message_id: str | None, note: str = ""
) -> list[dict]:
    """``note`` is our own mrkdwn (trusted); everything else is escaped here."""
    body = truncate(to_mrkdwn(text)) or "_(no answer)_"
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": body}}]
    lines = _source_lines(sources)
    if lines:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": lines}]})
    if note:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    if message_id:
        blocks.append(
            {
                "type": "actions",
                "block_id": "feedback",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "feedback_up",
                        "text": {"type": "plain_text", "text": "👍 Helpful"},
                        "value": f"{message_id}:1",
                    },
                    {
                        "type": "button",
                        "action_id": "feedback_down",
                        "text": {"type": "plain_text", "text": "👎 Not helpful"},
                        "value": f"{message_id}:-1",
                    },
                ],
            }
        )
    return blocks


def strip_mention(text: str) -> str:
    """``<@U123> how do I ...`` -> ``how do I ...``"""
    return re.sub(r"<@[A-Z0-9]+>", "", text).strip()
