"""The lexeme statistics (0004 and 0005) in their final form: the trigger function is created
once, already removing rows that reach 0, and the collection reference has no constraint from
the start.

A database that applied 0004 and 0005 only records this migration; one at 0003 runs it. 0005's
clean-up (rows at 0, rows of deleted collections) is left out: right after the backfill below
there are none, since every count is at least 1 and a chunk's collection exists.
"""

import django.db.models.deletion
from django.db import migrations, models

# Document frequencies kept exact by statement-level triggers with transition tables: each
# INSERT / DELETE / UPDATE on knowledge_chunk adds or subtracts, per collection, one per chunk
# for every distinct lexeme of its search_vector, and one for the chunk itself under the empty
# lexeme. A per-collection advisory lock (namespace 7302, taken in id order) serialises the
# statistics writes of concurrent indexing in one collection, so two transactions never
# update the same rows in different orders (no deadlocks); it is held until commit. Rows that
# reach 0 are removed by the trigger (under the collection's advisory lock): deleting a
# collection does not cascade to its statistics.
TRIGGERS = """
CREATE FUNCTION knowledge_lexemestat_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    c bigint;
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        FOR c IN SELECT DISTINCT collection_id FROM old_rows ORDER BY 1 LOOP
            PERFORM pg_advisory_xact_lock(7302, c::int);
        END LOOP;
        UPDATE knowledge_lexemestat s SET ndoc = s.ndoc - d.n
        FROM (
            SELECT o.collection_id, l.lexeme, count(*) AS n
            FROM old_rows o, unnest(tsvector_to_array(o.search_vector)) AS l(lexeme)
            GROUP BY 1, 2
            UNION ALL
            SELECT collection_id, '', count(*) FROM old_rows GROUP BY 1
        ) d
        WHERE s.collection_id = d.collection_id AND s.lexeme = d.lexeme;
        DELETE FROM knowledge_lexemestat s
        WHERE s.ndoc <= 0 AND s.collection_id IN (SELECT DISTINCT collection_id FROM old_rows);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        FOR c IN SELECT DISTINCT collection_id FROM new_rows ORDER BY 1 LOOP
            PERFORM pg_advisory_xact_lock(7302, c::int);
        END LOOP;
        INSERT INTO knowledge_lexemestat (collection_id, lexeme, ndoc)
        SELECT collection_id, lexeme, n FROM (
            SELECT o.collection_id, l.lexeme, count(*) AS n
            FROM new_rows o, unnest(tsvector_to_array(o.search_vector)) AS l(lexeme)
            GROUP BY 1, 2
            UNION ALL
            SELECT collection_id, '', count(*) FROM new_rows GROUP BY 1
        ) d
        ORDER BY 1, 2
        ON CONFLICT (collection_id, lexeme)
        DO UPDATE SET ndoc = knowledge_lexemestat.ndoc + EXCLUDED.ndoc;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER chunk_lexemestat_insert AFTER INSERT ON knowledge_chunk
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION knowledge_lexemestat_apply();
CREATE TRIGGER chunk_lexemestat_delete AFTER DELETE ON knowledge_chunk
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION knowledge_lexemestat_apply();
CREATE TRIGGER chunk_lexemestat_update AFTER UPDATE ON knowledge_chunk
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION knowledge_lexemestat_apply();
INSERT INTO knowledge_lexemestat (collection_id, lexeme, ndoc)
SELECT c.collection_id, l.lexeme, count(*)
FROM knowledge_chunk c, unnest(tsvector_to_array(c.search_vector)) AS l(lexeme)
GROUP BY 1, 2
UNION ALL
SELECT collection_id, '', count(*) FROM knowledge_chunk GROUP BY 1;
"""

REVERSE = """
DROP TRIGGER chunk_lexemestat_insert ON knowledge_chunk;
DROP TRIGGER chunk_lexemestat_delete ON knowledge_chunk;
DROP TRIGGER chunk_lexemestat_update ON knowledge_chunk;
DROP FUNCTION knowledge_lexemestat_apply();
"""


class Migration(migrations.Migration):
    replaces = [
        ("knowledge", "0004_lexeme_stats"),
        ("knowledge", "0005_lexeme_stats_without_cascade"),
    ]

    dependencies = [
        ("knowledge", "0003_chunk_search_vector"),
    ]

    operations = [
        migrations.CreateModel(
            name="LexemeStat",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("lexeme", models.TextField(blank=True)),
                ("ndoc", models.IntegerField()),
                (
                    "collection",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="knowledge.collection",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("collection", "lexeme"), name="lexemestat_unique"
                    )
                ],
            },
        ),
        migrations.RunSQL(TRIGGERS, reverse_sql=REVERSE),
    ]
