"""Word statistics for full-text ranking stay exactly equal to the chunks, whatever happens to
them: indexing, replacing a file, deleting a source or a collection, concurrent indexing."""

import threading

import pytest
from django.db import connection, connections, transaction

from knowledge import services
from knowledge.retrieval import _lexical_ranking
from knowledge.selectors import readable_collection_ids
from tests.support.knowledge import assert_statistics_exact, index_text, make_collection

# The ranking as it was before the statistics table: document frequencies counted per query.
COUNTED_PER_QUERY = """
WITH lex AS (
    SELECT DISTINCT lexeme FROM unnest(tsvector_to_array(to_tsvector('english', %(text)s))) AS lexeme
), total AS (
    SELECT count(*)::float AS n FROM knowledge_chunk WHERE collection_id = ANY(%(collections)s)
), m AS MATERIALIZED (
    SELECT lex.lexeme, c.id FROM lex CROSS JOIN LATERAL (
        SELECT c.id FROM knowledge_chunk c
        WHERE c.search_vector @@ quote_literal(lex.lexeme)::tsquery AND c.collection_id = ANY(%(collections)s)
    ) c
), idf AS (
    SELECT m.lexeme, count(*) AS df, greatest(ln(total.n / (1 + count(*))), 0) AS idf
    FROM m, total GROUP BY m.lexeme, total.n
), w AS (
    SELECT idf.* FROM idf, total WHERE idf.df <= %(max_df)s * total.n
       OR NOT EXISTS (SELECT 1 FROM idf, total WHERE idf.df <= %(max_df)s * total.n)
), q AS (
    SELECT to_tsquery('english', string_agg(quote_literal(lexeme), ' | ' ORDER BY lexeme)) AS query FROM w
), scored AS (
    SELECT m.id, round(sum(w.idf)::numeric, 9) AS cover FROM m JOIN w USING (lexeme)
    GROUP BY m.id ORDER BY cover DESC, m.id LIMIT 200
)
SELECT s.id FROM scored s JOIN knowledge_chunk c ON c.id = s.id, q
ORDER BY s.cover DESC, ts_rank_cd(c.search_vector, q.query, 1) DESC, s.id
LIMIT %(limit)s
"""


TEXTS = [
    "# Travel\n\nBook flights through the travel portal; trains are preferred under four hours.",
    "# Expenses\n\nExpense reports are filed in the finance portal within thirty days.",
    "# Laptops\n\nLaptops are replaced every three years; request one in the IT portal.",
]


@pytest.mark.django_db
def test_statistics_follow_indexing_replacing_and_deleting(admin):
    handbook, it = make_collection("Handbook", everyone=True), make_collection("IT", everyone=True)
    for i, text in enumerate(TEXTS):
        index_text(handbook, f"h{i}.md", text, user=admin)
    laptops = index_text(it, "laptops.md", TEXTS[2], user=admin)
    stored = assert_statistics_exact()
    assert stored[(handbook.pk, "portal")] == 3 and stored[(it.pk, "portal")] == 1
    assert stored[(handbook.pk, "")] == 3

    # The same name with other contents replaces the file: old words leave, new ones arrive.
    index_text(
        handbook, "h0.md", "# Travel\n\nTrains are booked by the assistant team.", user=admin
    )
    stored = assert_statistics_exact()
    assert stored[(handbook.pk, "portal")] == 2 and (handbook.pk, "flight") not in stored

    services.source_delete(user=admin, source=laptops)
    assert (it.pk, "portal") not in assert_statistics_exact()
    handbook.delete()
    assert assert_statistics_exact() == {}


@pytest.mark.django_db
@pytest.mark.parametrize("max_df", [0.05, 0.5, 1.0])
def test_the_ranking_equals_counting_frequencies_per_query(admin, make_user, max_df):
    public, secret = make_collection("Public", everyone=True), make_collection("Secret")
    for i, text in enumerate(TEXTS * 3):
        index_text(
            public if i % 3 else secret, f"d{i}.md", text.replace("three", f"{i} three"), user=admin
        )
    for i in range(25):
        index_text(
            public,
            f"n{i}.md",
            f"# Note {i}\n\nThe portal note number {i} about trains.",
            user=admin,
        )
    reader = make_user()
    collections = readable_collection_ids(reader)
    assert collections == [public.pk]
    with connection.cursor() as cursor:
        for question in [
            "travel portal trains",
            "expense reports thirty days",
            "laptops",
            "portal",
            "zebra",
        ]:
            ours = _lexical_ranking(cursor, question, collections, 40, 0, max_df=max_df)
            cursor.execute(
                COUNTED_PER_QUERY,
                {"text": question, "collections": collections, "limit": 40, "max_df": max_df},
            )
            assert ours == [row[0] for row in cursor.fetchall()], question


@pytest.mark.django_db(transaction=True)
def test_concurrent_indexing_in_one_collection_keeps_statistics_exact(admin):
    collection = make_collection("Busy", everyone=True)
    sources = []
    for i in range(6):
        with transaction.atomic():
            sources.append(
                services.source_create_from_upload(
                    user=admin,
                    collection=collection,
                    filename=f"s{i}.md",
                    data=(TEXTS[i % 3] + f"\n\nShared words portal travel number {i}.").encode(),
                ).source
            )
    errors = []
    barrier = threading.Barrier(3)

    def work(chunk):
        try:
            barrier.wait()
            for source in chunk:
                services.source_index(source_id=source.pk)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(sources[i::3],)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    stored = assert_statistics_exact()
    assert stored[(collection.pk, "")] >= 6 and stored[(collection.pk, "portal")] >= 6
