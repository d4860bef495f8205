"""Creates the demo administrator on first run and prints its login once."""

import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the demo admin account if no superuser exists yet (prints its password once)."

    def handle(self, *args, **options):
        User = get_user_model()
        existing = User.objects.filter(is_superuser=True).order_by("pk").first()
        if existing is not None:
            # The password was shown when the account was made; say how to set a new one.
            self.stdout.write(
                f"Administrator: {existing.email} (password shown when it was created)\n"
                "Forgot it? .venv/bin/python manage.py changepassword "
                f"{existing.email}"
            )
            return
        email = settings.DEMO_ADMIN_EMAIL
        password = os.environ.get("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser(email=email, password=password, full_name="Demo Admin")
        shown = (
            password if not os.environ.get("DEMO_ADMIN_PASSWORD") else "(from DEMO_ADMIN_PASSWORD)"
        )
        self.stdout.write(
            f"Demo admin created - this is shown once:\n  email:    {email}\n  password: {shown}"
        )
