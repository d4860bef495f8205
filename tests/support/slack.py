"""Requests as Slack sends them to the Slack door: signed with the test signing secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # the signing secret the tests configure
TOKEN = "xoxb-test-token"  # the bot token the tests configure


def signed(body: str, *, secret=SECRET, timestamp=None) -> dict:
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(
        secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256
    ).hexdigest()
    return {"HTTP_X_SLACK_REQUEST_TIMESTAMP": timestamp, "HTTP_X_SLACK_SIGNATURE": f"v0={digest}"}


def post_event(client, payload: dict, **extra):
    body = json.dumps(payload)
    headers = {**signed(body), **extra}
    return client.post("/slack/events", data=body, content_type="application/json", **headers)


def mention(
    text="<@UBOT> how do I book a flight?",
    *,
    event_id="Ev1",
    user="U1",
    ts="1700000000.000001",
    thread_ts=None,
):
    event = {"type": "app_mention", "user": user, "text": text, "channel": "C1", "ts": ts}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return {"type": "event_callback", "team_id": "T1", "event_id": event_id, "event": event}


def direct_message(
    text="how do I book a flight?", *, event_id="Ev1", user="U1", ts="1700000000.000001"
):
    event = {
        "type": "message",
        "channel_type": "im",
        "user": user,
        "text": text,
        "channel": "D1",
        "ts": ts,
    }
    return {"type": "event_callback", "team_id": "T1", "event_id": event_id, "event": event}
