"""Creates a personal access token for a person and prints it once (for scripts and
operators). Lives in knowledge, not accounts, because narrowing a token needs collections."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.selectors import active_account_for_email
from accounts.tokens import TokenRefused
from knowledge.tokens import token_create


class Command(BaseCommand):
    help = (
        "Create a personal access token for EMAIL and print it once. "
        "Same rules as the account page: never wider than the person."
    )

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--name", required=True, help="What the token is for.")
        parser.add_argument(
            "--collections",
            default="",
            help="Comma-separated collection names the token is limited to "
            "(default: everything the person can read).",
        )
        parser.add_argument(
            "--expires-days", type=int, default=None, help="Days until it expires (1-3650)."
        )

    def handle(self, *args, email: str, name: str, collections: str, expires_days, **options):
        user = active_account_for_email(email.strip())
        if user is None:
            raise CommandError(f"No active account has the address {email!r}.")
        names = [n.strip() for n in collections.split(",") if n.strip()]
        try:
            token, plaintext = token_create(
                user=user, name=name, collection_names=names, expires_days=expires_days
            )
        except TokenRefused as exc:
            raise CommandError(str(exc)) from exc
        scope = ", ".join(token.collections.order_by("name").values_list("name", flat=True))
        expires = f"{token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "never"
        self.stdout.write(
            f"Token {token.name!r} for {user.email} (shown once: store it now):\n"
            f"  {plaintext}\n"
            f"Scope: {scope or 'everything ' + user.email + ' can read'}. Expires: {expires}."
        )
