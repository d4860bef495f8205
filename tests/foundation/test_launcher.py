"""The launcher's choices, checked without starting the stack: which local model and what the app
is told about it, and a clear error for an unknown one. Starting the whole stack is
tests/e2e/test_launcher.py."""

import os
import subprocess
import sys

from assistant.devstack import localmodel
from assistant.devstack.launcher import embedded_llm_env
from tests.support.processes import BASE_DIR, free_ports

LLM_VARIABLES = (
    "EMBEDDED_LLM_MODEL",
    "EMBEDDED_LLM_BASE_URL",
    "LLM_MODEL",
    "LLM_CONTEXT_TOKENS",
    "LLM_TIMEOUT",
    "OPENAI_API_KEY",
)


# -- which local model, and what the app is told about it --------------------------------------


def test_the_launcher_tells_the_app_the_model_and_its_per_model_defaults():
    qwen = localmodel.choose("qwen2.5-coder-1.5b")

    exported = embedded_llm_env(qwen, {}, base_url="http://127.0.0.1:8081/v1")

    assert exported == {
        "OPENAI_BASE_URL": "http://127.0.0.1:8081/v1",
        "EMBEDDED_LLM_BASE_URL": "http://127.0.0.1:8081/v1",
        "EMBEDDED_LLM_MODEL": "qwen2.5-coder-1.5b",
        "OPENAI_API_KEY": "local",
        "LLM_MODEL": "qwen2.5-coder-1.5b-instruct",
        "LLM_CONTEXT_TOKENS": "2048",
        "LLM_TIMEOUT": "180",
    }
    small = embedded_llm_env(localmodel.choose("smollm2-135m"), {}, base_url="http://x/v1")
    assert (small["LLM_MODEL"], small["LLM_CONTEXT_TOKENS"]) == ("smollm2-135m-instruct", "4096")


def test_what_the_operator_set_explicitly_always_wins_over_the_model_defaults():
    qwen = localmodel.choose("qwen2.5-coder-1.5b")
    operator = {"LLM_CONTEXT_TOKENS": "3000", "LLM_TIMEOUT": "99", "LLM_MODEL": "mine"}

    exported = embedded_llm_env(qwen, operator, base_url="http://127.0.0.1:8081/v1")

    assert not {"LLM_CONTEXT_TOKENS", "LLM_TIMEOUT", "LLM_MODEL"} & exported.keys()


def test_an_unknown_model_stops_the_launcher_with_a_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", *LLM_VARIABLES)}
    env.update(
        VAR_DIR=str(tmp_path),
        EMBEDDED_LLM_PORT=str(free_ports(1)[0]),
        EMBEDDED_LLM_MODEL="gpt-9000",
    )

    done = subprocess.run(
        [sys.executable, "-m", "assistant.embedded", "services", "--", "python", "-c", "pass"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode != 0
    assert "EMBEDDED_LLM_MODEL='gpt-9000' is not a known local model" in done.stderr
    assert "Traceback" not in done.stderr
