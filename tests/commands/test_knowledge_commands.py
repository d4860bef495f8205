"""manage.py ingest / reindex / ask / evaluate, run as a person would run them."""

import io
import json
import subprocess
import sys

import pytest
from django.core.management import call_command

from knowledge.models import Chunk, Collection, Source
from tests.support.answering import scripted_env
from tests.support.knowledge import index_text, make_collection
from tests.support.openai_server import Reply, ScriptedOpenAI
from tests.support.processes import BASE_DIR, child_env

pytestmark = pytest.mark.django_db(transaction=True)


def manage(*args, env=None, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env or child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_ingest_adds_a_folder_recursively_and_waits_until_indexed(tmp_path, admin):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("# Alpha\n\nThe alpha team owns billing.")
    (tmp_path / "sub" / "b.txt").write_text("The beta team owns search.")
    (tmp_path / "sub" / "ignored.exe").write_bytes(b"MZ\x00\x00")
    result = manage("ingest", str(tmp_path), "--collection", "Teams", "--inline")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 indexed, 0 failed" in result.stdout
    collection = Collection.objects.get(name="Teams")
    assert collection.visibility == Collection.Visibility.EVERYONE
    assert sorted(collection.sources.values_list("name", "status")) == [
        ("a.md", "ready"),
        ("b.txt", "ready"),
    ]
    assert Chunk.objects.filter(collection=collection).count() >= 2


def test_ingest_exits_non_zero_when_a_file_fails(tmp_path, admin):
    (tmp_path / "good.md").write_text("# Good\n\nFine text.")
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf\n%%EOF")
    result = manage("ingest", str(tmp_path), "--collection", "Mixed", "--inline")
    assert result.returncode == 1
    assert "1 indexed, 1 failed" in result.stdout
    assert "bad.pdf" in result.stderr


def test_ingest_refuses_a_missing_path_and_an_unknown_user(tmp_path, admin):
    assert manage("ingest", str(tmp_path / "nope"), "--collection", "X").returncode != 0
    result = manage("ingest", str(tmp_path), "--collection", "X", "--user", "ghost@example.com")
    assert result.returncode != 0 and "ghost@example.com" in result.stderr


def test_reindex_re_embeds_every_source_of_a_collection(admin):
    collection = make_collection("Docs", everyone=True)
    source = index_text(collection, "doc.md", "# Doc\n\nSome words about printers.", user=admin)
    before = source.indexed_at
    call_command("reindex", "--collection", "Docs", "--inline", stdout=io.StringIO())
    source.refresh_from_db()
    assert source.status == Source.Status.READY and source.indexed_at > before


def test_ask_streams_an_answer_with_numbered_sources(admin):
    collection = make_collection("Docs", everyone=True)
    index_text(
        collection,
        "printers.md",
        "# Printers\n\nThe printer on floor 3 needs a badge to release jobs.",
        user=admin,
    )
    with ScriptedOpenAI() as llm:
        llm.script(Reply(tokens=["Use your ", "badge [1]."]))
        env = child_env(**scripted_env(llm))
        result = manage("ask", "How do I print on floor 3?", "--user", "admin@example.com", env=env)
    assert result.returncode == 0, result.stderr
    assert "Use your badge [1]." in result.stdout
    assert "[1] Printers" in result.stdout and "printers.md" in result.stdout


def test_evaluate_prints_recall_and_mrr_per_mode_and_writes_json(tmp_path, admin):
    collection = make_collection("Docs", everyone=True)
    index_text(
        collection,
        "vpn.md",
        "# VPN\n\nConnect the VPN client before opening the wiki from home.",
        user=admin,
    )
    index_text(
        collection,
        "leave.md",
        "# Leave\n\nParental leave is sixteen weeks at full pay.",
        user=admin,
    )
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        json.dumps({"question": "how long is parental leave", "expected_sources": ["leave.md"]})
        + "\n"
        + json.dumps({"question": "working from home wiki access", "expected_sources": ["vpn.md"]})
        + "\n"
    )
    out = tmp_path / "out.json"
    result = manage("evaluate", "--qa", str(qa), "--mode", "all", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "recall@1" in result.stdout and "hybrid" in result.stdout
    data = json.loads(out.read_text())
    assert set(data) == {"vector", "lexical", "hybrid"}
    assert data["hybrid"]["recall@5"] == 1.0 and data["vector"]["mrr"] == 1.0


def test_evaluate_only_counts_what_the_given_user_may_read(tmp_path, admin, make_user):
    secret = make_collection("Secret")
    index_text(
        secret, "leave.md", "# Leave\n\nParental leave is sixteen weeks at full pay.", user=admin
    )
    make_user(email="nobody@example.com")
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        json.dumps({"question": "parental leave", "expected_sources": ["leave.md"]}) + "\n"
    )
    out = tmp_path / "out.json"
    result = manage("evaluate", "--qa", str(qa), "--user", "nobody@example.com", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert all(row["recall@10"] == 0 for row in json.loads(out.read_text()).values())


def test_evaluate_reports_a_malformed_question_file(tmp_path, admin):
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"question": "no sources"}\n')
    result = manage("evaluate", "--qa", str(qa))
    assert result.returncode != 0 and "qa.jsonl:1" in result.stderr


def test_reindex_moves_chunks_and_memory_to_a_new_embedding_model_and_back(admin):
    """A model change with another dimension: chunks and every user's memory are re-embedded,
    the vector columns resized, and the way back works the same (it also restores the schema
    for the tests that follow)."""
    from assistant.memory import selectors as memory_selectors
    from assistant.memory import services as memory_services
    from knowledge.models import EmbeddingSpace
    from tests.support.fake_embeddings_server import FakeEmbeddingsServer, fake_vector

    collection = make_collection("Docs", everyone=True)
    source = index_text(collection, "doc.md", "# Doc\n\nSome words about printers.", user=admin)
    item = memory_services.remember(user=admin, text="I work in the Berlin office")
    original = list(item.embedding)

    elsewhere = child_env(
        EMBEDDINGS_BACKEND="openai",
        EMBEDDINGS_BASE_URL="http://127.0.0.1:9/v1",
        EMBEDDINGS_API_KEY="x",
        EMBEDDINGS_MODEL="elsewhere",
        EMBEDDINGS_DIMENSIONS="64",
    )
    refused = manage("reindex", "--collection", "Docs", env=elsewhere)
    assert refused.returncode != 0 and "every collection must be re-indexed" in refused.stderr

    with FakeEmbeddingsServer(dimensions=64) as server:
        env = child_env(
            EMBEDDINGS_BACKEND="openai",
            EMBEDDINGS_BASE_URL=server.base_url,
            EMBEDDINGS_API_KEY="test",
            EMBEDDINGS_MODEL="fake-embed",
            EMBEDDINGS_DIMENSIONS="64",
        )
        try:
            result = manage("reindex", "--inline", env=env)
            assert result.returncode == 0, result.stdout + result.stderr
            assert "1 other vector(s) re-embedded" in result.stdout
            space = EmbeddingSpace.objects.get()
            assert (space.name, space.dimensions) == ("openai:fake-embed", 64)
            source.refresh_from_db()
            assert source.status == Source.Status.READY, source.error
            chunks = list(Chunk.objects.filter(source=source))
            assert chunks and all(len(chunk.embedding) == 64 for chunk in chunks)
            item.refresh_from_db()
            assert list(item.embedding) == pytest.approx(fake_vector(item.text, 64), abs=1e-6)
        finally:
            back = manage("reindex", "--inline")  # the default local model, 384 dimensions
    assert back.returncode == 0, back.stdout + back.stderr
    space = EmbeddingSpace.objects.get()
    assert space.dimensions == 384 and space.name.startswith("local:")
    item.refresh_from_db()
    assert list(item.embedding) == pytest.approx(original, abs=1e-5)
    assert (
        memory_selectors.relevant_items(user=admin, query="Which office do I work in?")[0].pk
        == item.pk
    )
    assert all(len(chunk.embedding) == 384 for chunk in Chunk.objects.filter(source=source))
