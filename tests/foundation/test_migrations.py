"""The migrations describe the models exactly, build a database from nothing, and carry a
database made by the earlier ones forward: SlackEventReceipt moved from the assistant app to
the Slack app (label ``slack``) without its table, rows or permissions changing."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from assistant.slack.models import SlackEventReceipt
from tests.support import processes

BEFORE_THE_MOVE = [("assistant", "0007_answer_cache"), ("slack", None)]


@pytest.mark.django_db
def test_the_models_and_the_migrations_agree():
    """``makemigrations --check`` exits with 1 when a model change has no migration."""
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def _migrate(targets) -> None:
    """Applies or unapplies migrations up to ``targets`` as ``migrate`` would, but without its
    post_migrate signal: content types stay exactly as the migrations leave them."""
    MigrationExecutor(connection).migrate(targets)


def _latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_a_database_made_before_the_move_keeps_its_slack_deliveries_and_permissions(make_user):
    try:
        _migrate(BEFORE_THE_MOVE)
        # The database as the earlier migrations left it: the table and the content type are
        # the assistant app's, a delivery is stored, and a group may view deliveries.
        ContentType.objects.clear_cache()
        ContentType.objects.filter(app_label="slack").delete()
        old_type, _ = ContentType.objects.get_or_create(
            app_label="assistant", model="slackeventreceipt"
        )
        permission, _ = Permission.objects.get_or_create(
            content_type=old_type,
            codename="view_slackeventreceipt",
            defaults={"name": "Can view slack event receipt"},
        )
        group = Group.objects.create(name="Slack operators")
        group.permissions.add(permission)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO assistant_slackeventreceipt (key, kind, payload, status, error, "
                "received_at, attempts, reply_ts) VALUES "
                "('event:EvOld', 'event', '{\"a\": 1}', 'answered', '', now(), 1, '')"
            )

        _migrate(_latest())

        receipt = SlackEventReceipt.objects.get(key="event:EvOld")
        assert (receipt.kind, receipt.payload, receipt.status) == ("event", {"a": 1}, "answered")
        ContentType.objects.clear_cache()
        new_type = ContentType.objects.get_for_model(SlackEventReceipt)
        assert (new_type.pk, new_type.app_label) == (old_type.pk, "slack")
        assert not ContentType.objects.filter(app_label="assistant", model="slackeventreceipt")
        operator = make_user()
        operator.groups.add(group)
        assert operator.has_perm("slack.view_slackeventreceipt")
    finally:
        _migrate(_latest())
        ContentType.objects.clear_cache()


@pytest.mark.django_db(transaction=True)
def test_the_migrations_build_a_fresh_database_from_nothing():
    name = f"test_fresh_{uuid.uuid4().hex[:12]}"
    url = processes.test_database_url().replace(
        f"/{connection.settings_dict['NAME']}", f"/{name}", 1
    )
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        env = processes.child_env(DATABASE_URL=url)
        for command in (["migrate", "--no-input"], ["makemigrations", "--check", "--dry-run"]):
            done = subprocess.run(
                [sys.executable, "manage.py", *command],
                cwd=processes.BASE_DIR,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stdout + done.stderr
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
