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
        if User.objects.filter(is_superuser=True).exists():
            return
        email = settings.DEMO_ADMIN_EMAIL
        password = os.environ.get("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser(email=email, password=password, full_name="Demo Admin")
        shown = (
            password if not os.environ.get("DEMO_ADMIN_PASSWORD") else "(from DEMO_ADMIN_PASSWORD)"
        )
        self.stdout.write(
            self.style.SUCCESS(
                "\n  Demo admin created - this is shown once:\n"
                f"    email:    {email}\n    password: {shown}\n"
            )
        )
