from django.db import migrations

# A generated tsvector: headings and title (context) weigh more than the body. 'english'
# stemming suits most company documents.
SEARCH_VECTOR = """
ALTER TABLE knowledge_chunk ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english'::regconfig, coalesce(context, '')), 'A') ||
    setweight(to_tsvector('english'::regconfig, coalesce(text, '')), 'B')
) STORED;
CREATE INDEX chunk_search_vector_gin ON knowledge_chunk USING gin (search_vector);
"""


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0002_collections_sources_chunks")]
    operations = [
        migrations.RunSQL(
            SEARCH_VECTOR,
            reverse_sql="ALTER TABLE knowledge_chunk DROP COLUMN search_vector;",
        )
    ]
