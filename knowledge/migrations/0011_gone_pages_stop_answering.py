"""A web page marked gone (``Source.gone_at``) stops answering while its passages are kept (it
may come back): retrieval leaves it out, so marking it, or its return, must give its collection
a new knowledge version, as a status change does. The trigger function now watches ``gone_at``
too (see 0007 for the rest of it)."""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION knowledge_version_source() RETURNS trigger LANGUAGE plpgsql AS $$
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
                   o.embedding_model{extra_old})
               IS DISTINCT FROM
                  (n.collection_id, n.name, n.url, n.status, n.indexed_hash, n.chunk_count,
                   n.embedding_model{extra_new})
        ));
    END IF;
    RETURN NULL;
END
$$;
"""

FORWARD = FUNCTION.format(extra_old=", o.gone_at", extra_new=", n.gone_at")
BACKWARD = FUNCTION.format(extra_old="", extra_new="")


class Migration(migrations.Migration):
    dependencies = [
        ("knowledge", "0010_source_folder_path"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
