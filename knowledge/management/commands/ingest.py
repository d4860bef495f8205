"""python manage.py ingest PATH... --collection NAME"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from knowledge import parsing, services
from knowledge.models import Collection, Source


class Command(BaseCommand):
    help = (
        "Add files and folders (recursively) to a collection, wait until they are indexed, and "
        "exit non-zero if any failed. Uses the Celery workers when one answers, else indexes here."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+")
        parser.add_argument("--collection", required=True, help="created if missing")
        parser.add_argument(
            "--user", help="email of the account adding them (default: a superuser)"
        )
        parser.add_argument(
            "--visibility",
            choices=Collection.Visibility.values,
            default="everyone",
            help="for a new collection",
        )
        parser.add_argument("--inline", action="store_true", help="index in this process")
        parser.add_argument("--timeout", type=float, default=3600)

    def handle(self, *args, **opts):
        user = self._user(opts["user"])
        try:
            collection, created = services.collection_get_or_create(
                user=user, name=opts["collection"], visibility=opts["visibility"]
            )
        except services.KnowledgeError as exc:
            raise CommandError(str(exc)) from None
        if created:
            self.stdout.write(f"Created collection {collection.name!r} ({collection.visibility}).")
        files = list(self._files(opts["paths"]))
        if not files:
            raise CommandError("No supported files found in the given paths.")
        inline = opts["inline"] or not _worker_available()
        if inline and not opts["inline"]:
            self.stdout.write("No Celery worker answered: indexing in this process.")
        sources, refused = self._add(user, collection, files, inline)
        if inline:  # pages that later pages showed to carry the site's furniture, once more
            _index_queued_inline(sources)
        failed = self._wait(sources, opts["timeout"], inline)
        self.stdout.write(
            f"\n{len(sources) - len(failed)} indexed, {len(failed)} failed, {len(refused)} refused."
        )
        for name, reason in refused + failed:
            self.stderr.write(f"  {name}: {reason}")
        if failed or refused:
            sys.exit(1)

    def _user(self, email: str | None):
        users = get_user_model().objects
        if email:
            try:
                return users.get(email__iexact=email)
            except users.model.DoesNotExist:
                raise CommandError(f"No user with email {email}.") from None
        user = users.filter(is_superuser=True, is_active=True).order_by("pk").first()
        if user is None:
            raise CommandError("No superuser exists; pass --user EMAIL.")
        return user

    def _files(self, paths):
        for raw in paths:
            path = Path(raw)
            if not path.exists():
                raise CommandError(f"{raw} does not exist.")
            candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
            for candidate in candidates:
                if candidate.is_file() and candidate.suffix.lower() in parsing.SUPPORTED_EXTENSIONS:
                    yield candidate

    def _add(self, user, collection, files, inline):
        from django.db import transaction

        sources, refused = [], []
        for index, path in enumerate(files, 1):
            self._bar("adding", index, len(files))
            try:
                # Each file commits on its own, so workers start while we keep adding.
                with transaction.atomic():
                    result = services.source_create_from_upload(
                        user=user,
                        collection=collection,
                        filename=path.name,
                        data=path.read_bytes(),
                    )
            except services.KnowledgeError as exc:
                refused.append((str(path), str(exc)))
                continue
            sources.append(result.source.pk)
            if inline:
                _index_inline(result.source.pk)
        self.stdout.write("")
        return sources, refused

    def _wait(self, source_ids, timeout, inline):
        deadline = time.monotonic() + timeout
        while True:
            rows = list(
                Source.objects.filter(pk__in=source_ids).values_list("name", "status", "error")
            )
            done = [r for r in rows if r[1] in (Source.Status.READY, Source.Status.FAILED)]
            self._bar("indexing", len(done), len(source_ids))
            if len(done) == len(rows) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.stdout.write("")
        failed = [(name, error) for name, status, error in rows if status == Source.Status.FAILED]
        failed += [
            (name, "not indexed before the timeout")
            for name, status, _ in rows
            if status not in (Source.Status.READY, Source.Status.FAILED)
        ]
        return failed

    def _bar(self, label, done, total):
        width = 30
        filled = int(width * done / max(total, 1))
        self.stdout.write(
            f"\r{label:>9} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", ending=""
        )
        self.stdout.flush()


def _worker_available() -> bool:
    from celery import current_app  # the project's app (knowledge never imports the wiring's)

    try:
        return bool(current_app.control.ping(timeout=1.0, limit=1))
    except Exception:
        return False


def _index_queued_inline(source_ids: list[int], passes: int = 3) -> None:
    for _ in range(passes):  # one pass settles a site; the bound only guards against surprises
        queued = Source.objects.filter(pk__in=source_ids, status=Source.Status.QUEUED)
        pending = list(queued.values_list("pk", flat=True))
        if not pending:
            return
        for source_id in pending:
            _index_inline(source_id)


def _index_inline(source_id: int) -> None:
    from knowledge.tasks import index_source

    # The task body (with its failure handling), run here instead of on a worker.
    index_source.apply(args=[source_id])
