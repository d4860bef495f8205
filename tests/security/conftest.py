"""Shared by the security suite: one real Daphne (with a scripted model) for the end-to-end
socket attacks (the collection they attack: ``tests.support.knowledge.hr_world``)."""

from __future__ import annotations

import pytest

from tests.support import processes
from tests.support.openai_server import Reply, ScriptedOpenAI


@pytest.fixture(scope="session")
def live_llm():
    with ScriptedOpenAI(default=Reply(tokens=["See the handbook."])) as server:
        yield server


@pytest.fixture(scope="session")
def live_chat_server(django_db_setup, django_db_blocker, live_llm):
    """A real Daphne on the test database, answering with the scripted model."""
    with django_db_blocker.unblock():
        proc, port = processes.start_daphne(
            OPENAI_BASE_URL=live_llm.base_url,
            OPENAI_API_KEY="test",
            LLM_MODEL="scripted-model",
            LLM_MAX_RETRIES="0",
            CHAT_RATE_LIMIT_PER_MINUTE="0",
        )
    yield f"http://127.0.0.1:{port}"
    with django_db_blocker.unblock():
        processes.stop_and_discard_late_writes(proc, timeout=3)
