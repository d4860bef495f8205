"""python manage.py ask "question" --user EMAIL [--collection NAME]"""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from assistant import services
from assistant.answering.pipeline import answer_stream
from assistant.models import Conversation
from knowledge.models import Collection


class Command(BaseCommand):
    help = "Ask a question as a user; the answer streams here with its numbered sources."

    def add_arguments(self, parser):
        parser.add_argument("question")
        parser.add_argument("--user", required=True, help="email of the account to ask as")
        parser.add_argument(
            "--collection", action="append", help="limit to this collection (repeatable)"
        )

    def handle(self, *args, **opts):
        User = get_user_model()
        try:
            user = User.objects.get(email__iexact=opts["user"], is_active=True)
        except User.DoesNotExist:
            raise CommandError(f"No active user with email {opts['user']}.") from None
        collection_ids = None
        if opts["collection"]:
            collection_ids = list(
                Collection.objects.filter(name__in=opts["collection"]).values_list("id", flat=True)
            )
            if len(collection_ids) != len(set(opts["collection"])):
                raise CommandError("Unknown collection name.")
        question = services.question_create(
            user=user, conversation=None, text=opts["question"], origin=Conversation.Origin.CLI
        )
        ok = asyncio.run(self._stream(user, question, collection_ids))
        if not ok:
            raise CommandError("The answer could not be generated.")

    async def _stream(self, user, question, collection_ids) -> bool:
        sources, ok = [], True
        async for event in answer_stream(
            user=user, question=question, collection_ids=collection_ids
        ):
            if event.type == "retrieval":
                sources = event.sources
            elif event.type == "delta":
                self.stdout.write(event.text, ending="")
                self.stdout.flush()
            elif event.type == "error":
                ok = False
                self.stderr.write(f"\n{event.message}")
                if event.sources:
                    self.stdout.write("\nPassages found (not generated):")
            elif event.type == "done":
                self.stdout.write("")
        await sync_to_async(self._print_sources)(sources)
        return ok

    def _print_sources(self, sources):
        if not sources:
            return
        self.stdout.write("\nSources:")
        for s in sources:
            where = " — ".join(
                p for p in (s.get("heading"), f"page {s['page']}" if s.get("page") else "") if p
            )
            link = s.get("url") or s.get("source_name")
            self.stdout.write(f"  [{s['n']}] {s['title']}{' — ' + where if where else ''} ({link})")
