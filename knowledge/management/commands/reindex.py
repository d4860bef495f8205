"""python manage.py reindex [--collection NAME]"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from knowledge import embeddings
from knowledge.models import Collection, EmbeddingSpace, Source
from knowledge.signals import embedding_model_changed
from knowledge.tasks import index_source


class Command(BaseCommand):
    help = (
        "Re-index sources (all, or one collection's). When the configured embedding model "
        "differs from the stored vectors', every source is re-embedded with the new model."
    )

    def add_arguments(self, parser):
        parser.add_argument("--collection")
        parser.add_argument("--inline", action="store_true", help="index in this process")

    def handle(self, *args, **opts):
        embedder = embeddings.get_embedder()
        sources = Source.objects.all()
        space = EmbeddingSpace.objects.first()
        switching = space is not None and space.name != embedder.name
        if opts["collection"]:
            if switching:
                raise CommandError(
                    f"The embedding model changed ({space.name} -> {embedder.name}): "
                    "every collection must be re-indexed; run without --collection."
                )
            if not Collection.objects.filter(name=opts["collection"]).exists():
                raise CommandError(f"No collection named {opts['collection']!r}.")
            sources = sources.filter(collection__name=opts["collection"])
        with transaction.atomic():
            if switching:
                self._switch_model(space, embedder)
            ids = list(sources.values_list("pk", flat=True))
            Source.objects.filter(pk__in=ids).update(
                indexed_hash="", status=Source.Status.QUEUED, progress=0
            )
            if not opts["inline"]:
                transaction.on_commit(lambda: [index_source.delay(pk) for pk in ids])
        if opts["inline"]:
            for pk in ids:
                index_source.apply(args=[pk])
        self.stdout.write(f"{len(ids)} source(s) queued for re-indexing with {embedder.name}.")

    def _switch_model(self, space, embedder):
        from django.db import connection

        from knowledge.models import Chunk

        Chunk.objects.all().delete()  # old vectors are meaningless under the new model
        if embedder.dimensions != space.dimensions:
            with connection.cursor() as cursor:
                # The deletes above left deferred foreign-key checks queued (citations point at
                # chunks); PostgreSQL refuses ALTER TABLE while they are pending.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute("DROP INDEX IF EXISTS chunk_embedding_hnsw")
                cursor.execute(
                    f"ALTER TABLE knowledge_chunk ALTER COLUMN embedding TYPE vector({int(embedder.dimensions)})"
                )
                cursor.execute(
                    "CREATE INDEX chunk_embedding_hnsw ON knowledge_chunk "
                    "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
                )
        old_name, old_dimensions = space.name, space.dimensions
        space.name, space.dimensions = embedder.name, embedder.dimensions
        space.save()
        for receiver, count in embedding_model_changed.send(
            sender=EmbeddingSpace,
            embedder=embedder,
            old_name=old_name,
            old_dimensions=old_dimensions,
        ):
            self.stdout.write(f"{count} other vector(s) re-embedded ({receiver.__module__}).")
