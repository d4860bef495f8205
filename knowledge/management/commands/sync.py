"""python manage.py sync PATH --collection NAME --as EMAIL [--watch] [--dry-run]"""

from __future__ import annotations

import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError, close_old_connections

from knowledge import folder_sync
from knowledge.folder_sync import Outcome
from knowledge.management.collections import named_collection
from knowledge.models import Collection
from knowledge.selectors import can_manage_collection

# Exit statuses: 0 every file in step, 1 some file failed, 2 the sync could not run at all.
FILES_FAILED = 1
REFUSED = 2
LISTED_SKIPS = 20  # skipped files listed by name in the summary (all with -v 2)


class Command(BaseCommand):
    help = (
        "Mirror a folder (a mounted shared drive) into a collection: new and changed files are "
        "indexed, files deleted from the folder are removed from the collection, unchanged "
        "files are skipped by their content hash. Exits 1 when any file failed, 2 when the "
        "sync could not run."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="the folder to mirror")
        parser.add_argument("--collection", required=True, help="the collection's name")
        parser.add_argument(
            "--as",
            dest="actor",
            required=True,
            metavar="EMAIL",
            help="the account the sync acts as: it must manage the collection; the audit trail "
            "names it for every removal, and it owns the sources it adds",
        )
        parser.add_argument(
            "--create",
            action="store_true",
            help="create the collection when it does not exist (readable by staff and the "
            "groups you choose later)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="say what would change, change nothing"
        )
        parser.add_argument(
            "--allow-empty",
            action="store_true",
            help="mirror an empty folder (removes every source that came from it)",
        )
        parser.add_argument("--watch", action="store_true", help="repeat until interrupted")
        parser.add_argument(
            "--interval", type=float, default=60.0, help="seconds between runs with --watch"
        )
        parser.add_argument(
            "--max-runs",
            type=int,
            default=None,
            help="with --watch: stop after this many runs (for scripts and tests)",
        )
        parser.add_argument(
            "--inline", action="store_true", help="index in this process, not on a worker"
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=3600,
            help="seconds to wait for indexing before reporting (the indexing goes on)",
        )

    def handle(self, *args, **opts):
        root = Path(opts["path"])
        if not root.is_dir():
            raise CommandError(f"{root} is not a folder.", returncode=REFUSED)
        if opts["interval"] <= 0 or (opts["max_runs"] is not None and opts["max_runs"] < 1):
            raise CommandError("--interval and --max-runs must be positive.", returncode=REFUSED)
        user = self._actor(opts["actor"])
        collection = self._collection(
            user, opts["collection"], create=opts["create"], dry_run=opts["dry_run"]
        )
        self.tty = self.stdout.isatty()
        self.verbosity = opts["verbosity"]

        def once() -> int:
            return self._run_once(root, collection, user, opts)

        if not opts["watch"]:
            status = once()
        else:
            self.stdout.write(
                f"Watching {root} every {opts['interval']:g} s; press Ctrl-C to stop."
            )
            try:
                status = folder_sync.repeat(
                    once, interval=opts["interval"], max_runs=opts["max_runs"]
                )
            except KeyboardInterrupt:
                self.stdout.write("\nStopped.")
                return
        if status:
            sys.exit(status)

    # --- arguments ------------------------------------------------------------------------

    def _actor(self, email: str):
        users = get_user_model().objects
        user = users.filter(email__iexact=email.strip(), is_active=True).first()
        if user is None:
            raise CommandError(f"No active account has the email {email}.", returncode=REFUSED)
        return user

    def _collection(self, user, name: str, *, create: bool, dry_run: bool) -> Collection:
        collection = named_collection(
            user=user,
            name=name,
            create=create,
            say=self.stdout.write,
            dry_run=dry_run,
            returncode=REFUSED,
        )
        if collection.pk is None:  # a dry run of --create: named_collection checked who may
            return collection
        if not can_manage_collection(user, collection):
            raise CommandError(
                f"{user.email} may not change the collection {collection.name!r}; "
                "pass --as with the email of someone who manages it.",
                returncode=REFUSED,
            )
        return collection

    def _actor_still_allowed(self, user, collection: Collection):
        """The actor as the database has them now: a watch runs for days, and an account
        deactivated or removed from the managing group meanwhile must not go on syncing."""
        fresh = get_user_model().objects.filter(pk=user.pk).first()
        if collection.pk is None:  # a dry run of --create: the rule for creating it
            allowed = fresh is not None and fresh.is_active and fresh.is_staff
        else:
            allowed = fresh is not None and can_manage_collection(fresh, collection)
        if not allowed:
            raise CommandError(
                f"{user.email} may no longer change the collection {collection.name!r} (the "
                "account was deactivated or lost the right to manage it, or the collection was "
                "deleted); stopped without changing anything in this run.",
                returncode=REFUSED,
            )
        return fresh

    # --- one run --------------------------------------------------------------------------

    def _run_once(self, root: Path, collection: Collection, user, opts) -> int:
        if opts["watch"]:
            close_old_connections()  # a long watch outlives connections the database dropped
        try:
            user = self._actor_still_allowed(user, collection)
            if opts["dry_run"]:
                report = self._sync(root, collection, user, opts)
            else:
                with folder_sync.collection_lock(collection.pk):
                    report = self._sync(root, collection, user, opts)
                    report = self._wait(report, opts)
        except folder_sync.SyncRefused as exc:
            if not opts["watch"]:
                raise CommandError(str(exc), returncode=REFUSED) from None
            self.stderr.write(str(exc))
            return REFUSED
        except (OperationalError, InterfaceError) as exc:
            if not opts["watch"]:
                raise
            # The database restarting must not end a watch: the next run connects afresh.
            self.stderr.write(f"The database could not be reached ({exc}); trying again later.")
            return REFUSED
        self._summary(root, collection, report)
        return FILES_FAILED if report.failed else 0

    def _sync(self, root, collection, user, opts) -> folder_sync.Report:
        return folder_sync.sync_folder(
            root=root,
            collection=collection,
            user=user,
            dry_run=opts["dry_run"],
            allow_empty=opts["allow_empty"],
            progress=self._progress(opts["dry_run"]),
        )

    def _wait(self, report: folder_sync.Report, opts) -> folder_sync.Report:
        ids = folder_sync.sources_to_wait_for(report)
        if not ids:
            return report
        if folder_sync.busy_sources(ids) and (opts["inline"] or not _worker_available()):
            if not opts["inline"]:
                self.stdout.write("No Celery worker answered: indexing in this process.")
            for source_id in folder_sync.busy_sources(ids):
                _index_inline(source_id)
        busy = folder_sync.wait_for_indexing(
            ids, timeout=opts["timeout"], progress=self._bar("indexing") if self.tty else None
        )
        if self.tty:
            self.stdout.write("")
        return folder_sync.with_indexing_results(report, busy)

    # --- output ---------------------------------------------------------------------------

    def _progress(self, dry_run: bool):
        if self.tty:
            bar = self._bar("checking")

            def on_tty(done: int, total: int, entry: folder_sync.Entry) -> None:
                bar(done, total)
                if done == total:
                    self.stdout.write("")

            return on_tty

        def on_lines(done: int, total: int, entry: folder_sync.Entry) -> None:
            # Plain lines for logs: what changed, one line each (everything with -v 2).
            if entry.outcome in (Outcome.UNCHANGED, Outcome.SKIPPED) and self.verbosity < 2:
                return
            verb = folder_sync.WOULD.get(entry.outcome, entry.outcome) if dry_run else None
            said = verb or entry.outcome.value
            reason = f": {entry.reason}" if entry.reason else ""
            self.stdout.write(f"[{done}/{total}] {said} {entry.path}{reason}")

        return on_lines

    def _bar(self, label: str):
        def draw(done: int, total: int) -> None:
            width = 30
            filled = int(width * done / max(total, 1))
            self.stdout.write(
                f"\r{label:>9} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}",
                ending="",
            )
            self.stdout.flush()

        return draw

    def _summary(self, root: Path, collection: Collection, report: folder_sync.Report) -> None:
        counts = ", ".join(
            f"{report.count(outcome)} {outcome.value}"
            for outcome in (
                Outcome.ADDED,
                Outcome.CHANGED,
                Outcome.UNCHANGED,
                Outcome.REMOVED,
                Outcome.RENAMED,
                Outcome.SKIPPED,
                Outcome.FAILED,
            )
        )
        if report.dry_run:
            self.stdout.write(f"Dry run of {root} into {collection.name!r}: {counts}.")
            self.stdout.write("Nothing was changed.")
        else:
            self.stdout.write(f"Synced {root} into {collection.name!r}: {counts}.")
        skipped = report.of(Outcome.SKIPPED)
        shown = skipped if self.verbosity >= 2 else skipped[:LISTED_SKIPS]
        if skipped:
            self.stdout.write("Skipped:")
            for entry in shown:
                self.stdout.write(f"  {entry.path}: {entry.reason}")
            if len(shown) < len(skipped):
                self.stdout.write(f"  … and {len(skipped) - len(shown)} more (-v 2 lists all)")
        busy = [e for e in report.entries if e.reason == "still being indexed"]
        if busy:
            self.stdout.write(
                f"{len(busy)} files are still being indexed; the knowledge page shows when "
                "they are ready."
            )
        failed = report.of(Outcome.FAILED)
        if failed:
            self.stderr.write("Failed:")
            for entry in failed:
                self.stderr.write(f"  {entry.path}: {entry.reason}")


def _worker_available() -> bool:
    from celery import current_app  # the project's app (knowledge never imports the wiring's)

    try:
        return bool(current_app.control.ping(timeout=1.0, limit=1))
    except Exception:
        return False


def _index_inline(source_id: int) -> None:
    from knowledge.tasks import index_source

    # The task body (with its failure handling), run here instead of on a worker.
    index_source.apply(args=[source_id])
