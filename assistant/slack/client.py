"""The one module that talks to Slack's Web API (through slack_sdk), returning our own types.

Rate limits (429 with Retry-After), 5xx answers and connection errors are retried a bounded
number of times by slack_sdk's retry handlers; anything else raises ``SlackAPIError``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

MAX_RETRIES = 3


class SlackAPIError(Exception):
    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


@dataclass(frozen=True)
class SlackUser:
    id: str
    email: str
    name: str
    is_bot: bool
    team_id: str = ""
    email_confirmed: bool = False
    deleted: bool = False
    # Guests (single- or multi-channel) and people from another organisation (Slack Connect,
    # Enterprise Grid) are not full members of our workspace.
    is_guest: bool = False
    is_stranger: bool = False


@dataclass(frozen=True)
class ThreadMessage:
    user: str
    text: str
    ts: str
    is_bot: bool


@dataclass(frozen=True)
class Posted:
    channel: str
    ts: str


def _retry_handlers():
    return [
        RateLimitErrorRetryHandler(max_retry_count=MAX_RETRIES),
        ServerErrorRetryHandler(max_retry_count=MAX_RETRIES),
        ConnectionErrorRetryHandler(max_retry_count=MAX_RETRIES),
    ]


def _client() -> WebClient:
    return WebClient(
        token=settings.SLACK_BOT_TOKEN,
        base_url=settings.SLACK_API_BASE_URL,
        timeout=settings.SLACK_TIMEOUT,
        retry_handlers=_retry_handlers(),
    )


def _call(method: str, **kwargs) -> dict:
    try:
        response = getattr(_client(), method)(**kwargs)
    except SlackApiError as exc:
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        raise SlackAPIError(data.get("error") or f"http_{exc.response.status_code}") from None
    except (SlackRequestError, OSError) as exc:
        raise SlackAPIError("request_failed", str(exc)) from None
    return response.data if isinstance(response.data, dict) else {}


def user_info(user_id: str) -> SlackUser:
    user = _call("users_info", user=user_id).get("user") or {}
    profile = user.get("profile") or {}
    return SlackUser(
        id=user.get("id", user_id),
        email=str(profile.get("email") or "").strip().lower(),
        name=str(profile.get("real_name") or user.get("real_name") or user.get("name") or ""),
        is_bot=bool(user.get("is_bot") or user.get("is_app_user")),
        team_id=str(user.get("team_id") or ""),
        # Only an explicit ``true`` counts: a missing flag is not a confirmation.
        email_confirmed=user.get("is_email_confirmed") is True,
        deleted=bool(user.get("deleted")),
        is_guest=bool(user.get("is_restricted") or user.get("is_ultra_restricted")),
        is_stranger=bool(user.get("is_stranger")),
    )


def _auth() -> dict:
    """``auth.test`` for our bot token (its workspace and its own user), cached for an hour."""
    token = hashlib.sha256(settings.SLACK_BOT_TOKEN.encode()).hexdigest()[:16]
    key = f"slack:auth-test:{settings.SLACK_API_BASE_URL}:{token}"
    auth = cache.get(key)
    if auth is None:
        data = _call("auth_test")
        auth = {
            "team_id": str(data.get("team_id") or ""),
            "user_id": str(data.get("user_id") or ""),
        }
        cache.set(key, auth, 3600)
    return auth


def installed_team_id() -> str:
    """The workspace our bot is installed in."""
    return _auth()["team_id"]


def bot_user_id() -> str:
    return _auth()["user_id"]


def thread_messages(channel: str, thread_ts: str, limit: int = 30) -> list[ThreadMessage]:
    data = _call("conversations_replies", channel=channel, ts=thread_ts, limit=limit)
    return [
        ThreadMessage(
            user=m.get("user", ""),
            text=m.get("text", ""),
            ts=m.get("ts", ""),
            is_bot=bool(m.get("bot_id")),
        )
        for m in data.get("messages") or []
    ]


def post_message(
    channel: str, text: str, *, thread_ts: str | None = None, blocks: list | None = None
) -> Posted:
    data = _call(
        "chat_postMessage",
        channel=channel,
        text=text,
        thread_ts=thread_ts,
        blocks=blocks,
        unfurl_links=False,
        unfurl_media=False,
    )
    return Posted(channel=data.get("channel", channel), ts=data.get("ts", ""))


def post_ephemeral(channel: str, user: str, text: str, *, thread_ts: str | None = None) -> None:
    """A message only ``user`` sees (e.g. a link that must not be shown to the channel)."""
    _call("chat_postEphemeral", channel=channel, user=user, text=text, thread_ts=thread_ts)


def update_message(channel: str, ts: str, text: str, *, blocks: list | None = None) -> None:
    # Unfurling would make Slack fetch any URL in the answer and show its preview.
    _call(
        "chat_update",
        channel=channel,
        ts=ts,
        text=text,
        blocks=blocks,
        unfurl_links=False,
        unfurl_media=False,
    )


def respond(
    response_url: str, text: str, *, blocks: list | None = None, in_channel: bool = False
) -> None:
    """Answers a slash command through its response_url."""
    client = WebhookClient(
        response_url, timeout=settings.SLACK_TIMEOUT, retry_handlers=_retry_handlers()
    )
    try:
        response = client.send(
            text=text,
            blocks=blocks,
            response_type="in_channel" if in_channel else "ephemeral",
            unfurl_links=False,
            unfurl_media=False,
        )
    except (SlackRequestError, OSError) as exc:
        raise SlackAPIError("request_failed", str(exc)) from None
    if response.status_code >= 400:
        raise SlackAPIError(f"http_{response.status_code}", response.body[:200])
