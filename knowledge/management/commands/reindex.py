"""python manage.py reindex [--collection NAME] [--inline]"""

from django.core.management.base import BaseCommand, CommandError

from knowledge import services
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
        try:
            result = services.sources_reindex(
                collection_name=opts["collection"], enqueue=not opts["inline"]
            )
        except services.KnowledgeError as exc:
            raise CommandError(str(exc)) from None
        for module, count in result.others_reembedded:
            self.stdout.write(f"{count} other vector(s) re-embedded ({module}).")
        if opts["inline"]:
            for pk in result.source_ids:
                index_source.apply(args=[pk])
        self.stdout.write(
            f"{len(result.source_ids)} source(s) queued for re-indexing with {result.embedder_name}."
        )
