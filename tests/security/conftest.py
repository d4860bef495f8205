"""Shared by the security suite: the scripted model the in-process socket attacks are answered
with (the collection they attack: ``tests.support.knowledge.hr_world``)."""

from __future__ import annotations

import pytest

from tests.support.answering import scripted_settings
from tests.support.openai_server import Reply, ScriptedOpenAI


@pytest.fixture(scope="session")
def live_llm():
    with ScriptedOpenAI(default=Reply(tokens=["See the handbook."])) as server:
        yield server


@pytest.fixture
def chat_model(live_llm, settings):
    """The app (the consumer, the pipeline) answers with the scripted model, no rate limit."""
    for name, value in scripted_settings(live_llm, CHAT_RATE_LIMIT_PER_MINUTE=0).items():
        setattr(settings, name, value)
    return live_llm
