"""A version per collection that changes with anything retrieval could read there.

Statement-level triggers on ``knowledge_source`` and ``knowledge_chunk`` give every collection
a statement touched a new number from one sequence (numbers never repeat). A source counts as
changed when what an answer could show or read changes (collection, name, URL, status, indexed
content, chunk count, embedding model), not on progress updates. Chunks count on any insert,
update or delete. The answer cache keys on these numbers (``assistant.answering.cache``).

Writers of one collection take its advisory lock (the one the lexeme statistics use) before the
row, so the version row adds no new lock order.
"""

import django.db.models.deletion
from django.db import migrations, models

FORWARD = """
CREATE SEQUENCE knowledge_version_seq;

CREATE FUNCTION knowledge_version_bump(ids bigint[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c bigint;
BEGIN
    FOR c IN SELECT DISTINCT u FROM unnest(ids) AS u WHERE u IS NOT NULL ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(7302, c::int);
        INSERT INTO knowledge_knowledgeversion (collection_id, version)
        VALUES (c, nextval('knowledge_version_seq'))
        ON CONFLICT (collection_id) DO UPDATE SET version = EXCLUDED.version;
    END LOOP;
END
$$;

CREATE FUNCTION knowledge_version_source() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM knowledge_version_bump(ARRAY(SELECT collection_id FROM new_rows));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM knowledge_version_bump(ARRAY(SELECT collection_id FROM old_rows));
    ELSE
        PERFORM knowledge_version_bump(ARRAY(
            SELECT unnest(ARRAY[o.collection_id, n.collection_id])
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE (o.collection_id, o.name, o.url, o.status, o.indexed_hash, o.chunk_count,
                   o.embedding_model)
               IS DISTINCT FROM
                  (n.collection_id, n.name, n.url, n.status, n.indexed_hash, n.chunk_count,
                   n.embedding_model)
        ));
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION knowledge_version_chunk() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM knowledge_version_bump(ARRAY(SELECT collection_id FROM new_rows));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM knowledge_version_bump(ARRAY(SELECT collection_id FROM old_rows));
    ELSE
        PERFORM knowledge_version_bump(ARRAY(
            SELECT collection_id FROM old_rows UNION SELECT collection_id FROM new_rows
        ));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER knowledge_version_source_insert AFTER INSERT ON knowledge_source
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION knowledge_version_source();
CREATE TRIGGER knowledge_version_source_update AFTER UPDATE ON knowledge_source
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION knowledge_version_source();
CREATE TRIGGER knowledge_version_source_delete AFTER DELETE ON knowledge_source
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION knowledge_version_source();
CREATE TRIGGER knowledge_version_chunk_insert AFTER INSERT ON knowledge_chunk
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION knowledge_version_chunk();
CREATE TRIGGER knowledge_version_chunk_update AFTER UPDATE ON knowledge_chunk
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION knowledge_version_chunk();
CREATE TRIGGER knowledge_version_chunk_delete AFTER DELETE ON knowledge_chunk
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION knowledge_version_chunk();
"""

BACKWARD = """
DROP TRIGGER knowledge_version_source_insert ON knowledge_source;
DROP TRIGGER knowledge_version_source_update ON knowledge_source;
DROP TRIGGER knowledge_version_source_delete ON knowledge_source;
DROP TRIGGER knowledge_version_chunk_insert ON knowledge_chunk;
DROP TRIGGER knowledge_version_chunk_update ON knowledge_chunk;
DROP TRIGGER knowledge_version_chunk_delete ON knowledge_chunk;
DROP FUNCTION knowledge_version_chunk();
DROP FUNCTION knowledge_version_source();
DROP FUNCTION knowledge_version_bump(bigint[]);
DROP SEQUENCE knowledge_version_seq;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("knowledge", "0006_chunk_collection_follows_source"),
    ]

    operations = [
        migrations.CreateModel(
            name="KnowledgeVersion",
            fields=[
                (
                    "collection",
                    models.OneToOneField(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="knowledge.collection",
                    ),
                ),
                ("version", models.BigIntegerField()),
            ],
        ),
        migrations.RunSQL(FORWARD, reverse_sql=BACKWARD),
    ]
