"""python manage.py erase-user EMAIL [--yes] [--delete-sources | --reassign-to EMAIL]

Django finds commands by their module's file name, and a hyphen is fine there (the module is
loaded with importlib, never imported by name), so the command is named as the issue names it.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from assistant.privacy.erasure import (
    ErasureRefused,
    erasure_check,
    erasure_preview,
    user_erase,
    user_find,
)


class Command(BaseCommand):
    help = (
        "Erase a person: their account, conversations, memory, feedback, access tokens and "
        "Slack identities. Their knowledge sources are kept: handed to --reassign-to, else "
        "with no owner; --delete-sources deletes them instead. Asks first, unless --yes."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        whose = parser.add_mutually_exclusive_group()
        whose.add_argument(
            "--delete-sources",
            action="store_true",
            help="also delete the knowledge sources they added, with their uploaded files",
        )
        whose.add_argument(
            "--reassign-to",
            metavar="EMAIL",
            help="hand the knowledge sources they added to this active account (default: no owner)",
        )

    def handle(
        self,
        *args,
        email: str,
        yes: bool,
        delete_sources: bool,
        reassign_to: str | None,
        **options,
    ):
        user = user_find(email=email)
        if user is None:
            raise CommandError(f"No account has the address {email!r}. Nothing was erased.")
        heir = None
        if reassign_to is not None:
            heir = user_find(email=reassign_to)
            if heir is None or not heir.is_active or heir.pk == user.pk:
                raise CommandError(
                    f"--reassign-to {reassign_to!r} must be another active account. "
                    "Nothing was erased."
                )
        try:
            erasure_check(actor=None, user=user)
        except ErasureRefused as exc:
            raise CommandError(f"{exc} Nothing was erased.") from None
        preview = erasure_preview(user=user)
        owner = heir.email if heir is not None else "no owner"
        if delete_sources:
            sources = f"their {preview.sources_kept} source(s) and uploaded files will be DELETED"
        else:
            sources = f"their {preview.sources_kept} source(s) stay, with {owner}"
        self.stdout.write(
            f"Erasing {user.email} deletes the account and {preview.describe()}; {sources}."
        )
        if not yes and not self._confirmed(options.get("stdin") or sys.stdin, user.email):
            raise CommandError("Not confirmed. Nothing was erased.")
        try:
            counts = user_erase(actor=None, user=user, delete_sources=delete_sources, heir=heir)
        except ErasureRefused as exc:
            raise CommandError(f"{exc} Nothing was erased.") from None
        kept = (
            f" {counts.sources_kept} source(s) kept, with {owner}." if counts.sources_kept else ""
        )
        self.stdout.write(f"Erased {email.strip()}: the account, {counts.describe()}.{kept}")

    def _confirmed(self, stdin, email: str) -> bool:
        # Read from a pipe too (``echo ADDRESS | manage.py erase-user ADDRESS``); an empty
        # stdin (cron, CI) is no confirmation.
        self.stdout.write("Type the address again to confirm: ", ending="")
        self.stdout.flush()
        return stdin.readline().strip().lower() == email.lower()
