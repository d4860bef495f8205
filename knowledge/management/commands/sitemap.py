"""python manage.py sitemap URL --collection NAME [--create]"""

from __future__ import annotations

import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from knowledge import fetching, services, syncing
from knowledge.management.collections import named_collection


class Command(BaseCommand):
    help = (
        "Add a site's sitemap.xml (or its root: /sitemap.xml is read) to a collection: its pages "
        "become web pages of the collection (queued for indexing), checked again on the refresh "
        "schedule. The collection must exist unless --create is given. Says what was added and "
        "refused; exits non-zero if the sitemap could not be read."
    )

    def add_arguments(self, parser):
        parser.add_argument("url")
        parser.add_argument("--collection", required=True, help="the collection's name")
        parser.add_argument(
            "--create",
            action="store_true",
            help="create the collection when it does not exist (readable by staff and the "
            "groups you choose later)",
        )
        parser.add_argument("--user", help="email of the account adding it (default: a superuser)")

    def handle(self, *args, **opts):
        user = self._user(opts["user"])
        try:
            syncing.sitemap_url_for(opts["url"])  # a nonsense address creates nothing
        except fetching.FetchError as exc:
            raise CommandError(str(exc)) from None
        collection = named_collection(
            user=user, name=opts["collection"], create=opts["create"], say=self.stdout.write
        )
        try:
            sitemap = syncing.sitemap_add(
                user=user, collection=collection, url=opts["url"], enqueue=False
            )
        except services.KnowledgeError as exc:
            raise CommandError(str(exc)) from None
        sitemap = syncing.sitemap_refresh(sitemap_id=sitemap.pk)
        if sitemap.error:
            self.stderr.write(f"{sitemap.url}: {sitemap.error}")
            sys.exit(1)
        report = sitemap.report
        self.stdout.write(
            f"{sitemap.url}: pages listed {report['listed']}, added {report['added']} to "
            f"{collection.name} (queued for indexing), refused {report['refused_count']}, over "
            f"the limit {report['left_out']}, no longer listed {report['no_longer_listed']}."
        )
        if not report["complete"]:
            self.stdout.write(
                f"{report['sitemaps_unread']} of the sitemaps it lists were not read "
                f"({report['sitemaps_left_out']} over the limit, the others refused below), so "
                "no page was marked as no longer listed."
            )
        for entry in report["refused"]:
            self.stdout.write(f"  refused {entry['url']}: {entry['reason']}")

    def _user(self, email: str | None):
        users = get_user_model().objects
        if email:
            user = users.filter(email__iexact=email, is_active=True).first()
            if user is None:
                raise CommandError(f"No active user has the email {email}.")
            return user
        user = users.filter(is_superuser=True, is_active=True).order_by("pk").first()
        if user is None:
            raise CommandError("No superuser exists; pass --user EMAIL.")
        return user
