"""A chunk's collection is its source's collection, kept so by the database on every write.

``knowledge_chunk.collection_id`` is the copy retrieval filters on inside its SQL. Before this
migration, changing a source's collection (admin form, ORM ``save()`` or ``update()``) left its
chunks in the old collection, readable by the old collection's readers. Now:

- chunks already out of line are first moved to their source's collection (an UPDATE, so the
  lexeme-statistics trigger moves their counts too);
- (source_id, collection_id) references knowledge_source (id, collection_id) ON UPDATE CASCADE:
  an insert with another collection is refused, and moving a source moves its chunks in the same
  statement. The cascade is a plain UPDATE of knowledge_chunk, so the statement-level trigger of
  0004/0005 moves the statistics (tests/security/test_acl.py recounts both collections);
- (document_id, source_id) references knowledge_document (id, source_id): a chunk's text and
  title come from a document of its own source.

Both are NOT DEFERRABLE: a wrong row is refused at the statement that writes it. Referential
actions run at the end of the statement whatever the deferral, and every existing write path
(indexing, Django's cascading deletes, which delete chunks before their source) satisfies them.

The statistics trigger now takes, for an UPDATE, the advisory locks of the old and the new
collections together in id order: two moves in opposite directions would otherwise each hold
one collection's lock while waiting for the other's.
"""

from django.db import migrations, models

FOREIGN_KEYS = """
UPDATE knowledge_chunk c SET collection_id = s.collection_id
FROM knowledge_source s
WHERE s.id = c.source_id AND c.collection_id <> s.collection_id;
DELETE FROM knowledge_chunk c USING knowledge_document d
WHERE d.id = c.document_id AND d.source_id <> c.source_id;
ALTER TABLE knowledge_chunk
    ADD CONSTRAINT chunk_collection_is_source_collection
    FOREIGN KEY (source_id, collection_id) REFERENCES knowledge_source (id, collection_id)
    ON UPDATE CASCADE ON DELETE CASCADE NOT DEFERRABLE;
ALTER TABLE knowledge_chunk
    ADD CONSTRAINT chunk_source_is_document_source
    FOREIGN KEY (document_id, source_id) REFERENCES knowledge_document (id, source_id)
    ON DELETE CASCADE NOT DEFERRABLE;
"""

DROP_FOREIGN_KEYS = """
ALTER TABLE knowledge_chunk DROP CONSTRAINT chunk_source_is_document_source;
ALTER TABLE knowledge_chunk DROP CONSTRAINT chunk_collection_is_source_collection;
"""

FUNCTION = """
CREATE OR REPLACE FUNCTION knowledge_lexemestat_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    c bigint;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        -- A move touches two collections: lock both, in id order, before either is written.
        FOR c IN SELECT collection_id FROM old_rows UNION SELECT collection_id FROM new_rows
                 ORDER BY 1 LOOP
            PERFORM pg_advisory_xact_lock(7302, c::int);
        END LOOP;
    END IF;
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
"""

PREVIOUS = """
CREATE OR REPLACE FUNCTION knowledge_lexemestat_apply() RETURNS trigger LANGUAGE plpgsql AS $$
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
"""


class Migration(migrations.Migration):
    dependencies = [
        ("knowledge", "0005_lexeme_stats_without_cascade"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="source",
            constraint=models.UniqueConstraint(
                fields=("id", "collection"), name="source_id_collection"
            ),
        ),
        migrations.AddConstraint(
            model_name="document",
            constraint=models.UniqueConstraint(fields=("id", "source"), name="document_id_source"),
        ),
        migrations.RunSQL(FUNCTION, reverse_sql=PREVIOUS),
        migrations.RunSQL(FOREIGN_KEYS, reverse_sql=DROP_FOREIGN_KEYS),
    ]
