"""The migrations describe the models exactly, build a database from nothing, and carry a
database made by the earlier ones forward: SlackEventReceipt moved from the assistant app to
the Slack app (label ``slack``) without its table, rows or permissions changing. The squashed
migrations build the schema the migrations they replace build, and a database that applied
those (every database made before the squash) takes the squashes without a change."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import uuid

import psycopg
import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader

from assistant.slack.models import SlackEventReceipt
from tests.support import processes

SQUASHES = {
    ("accounts", "0002_squashed_0004_slack_identity_audit"),
    ("assistant", "0002_squashed_0008_slack_memory_answer_cache"),
    ("knowledge", "0004_squashed_0005_lexeme_stats"),
}

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


@contextlib.contextmanager
def _scratch_database():
    """A new, empty database on the test server: yields its URL, drops it afterwards."""
    name = f"test_fresh_{uuid.uuid4().hex[:12]}"
    url = processes.test_database_url().replace(
        f"/{connection.settings_dict['NAME']}", f"/{name}", 1
    )
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _manage(url: str, *command: str, **env: str) -> str:
    """``manage.py COMMAND`` in a process of its own on the database at ``url``: its output."""
    done = subprocess.run(
        [sys.executable, "manage.py", *command],
        cwd=processes.BASE_DIR,
        env=processes.child_env(DATABASE_URL=url, **env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


# The migrations as they were before the squashes (their files are kept, unchanged): the graph
# without replacements, migrated to the nodes in MIGRATE_TO (JSON) or else to its leaves, then
# without the squashes' records, which Django adds once their replaced migrations are all
# applied. Migrated to its leaves, that is every database made before the squashes (var/dev,
# var/bench, developers' own).
BEFORE_THE_SQUASHES = """
import json
import os

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder

executor = MigrationExecutor(connection)
executor.loader.replace_migrations = False
executor.loader.build_graph()
squashes = set(executor.loader.replacements)
leaves = [node for node in executor.loader.graph.leaf_nodes() if node not in squashes]
executor.migrate([tuple(node) for node in json.loads(os.environ.get("MIGRATE_TO", "null")) or leaves])
for app, name in squashes:
    MigrationRecorder(connection).record_unapplied(app, name)
"""


# Everything a migration could leave in the database, read from the catalogs (the server's own
# rendering of each definition), so no pg_dump of a matching version is needed. Objects that
# belong to an extension (pgvector's functions, types, operators) are compared through the
# extension's version.
CATALOG = {
    "extensions": "SELECT extname, extversion FROM pg_extension",
    "relations": """
        SELECT c.relname, c.relkind, c.relpersistence FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind <> 'c'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype = 'e')""",
    "columns": """
        SELECT c.relname,
               row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum),
               a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
               a.attcollation::regcollation::text
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
          AND a.attnum > 0 AND NOT a.attisdropped""",
    "indexes": """
        SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisunique, i.indisprimary
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE c.relnamespace = 'public'::regnamespace""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid),
               condeferrable, condeferred, convalidated
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace""",
    "triggers": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid), tgenabled
        FROM pg_trigger WHERE NOT tgisinternal""",
    "functions": """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid)
        FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                          AND d.objid = p.oid AND d.deptype = 'e')""",
    "sequences": """
        SELECT sequencename, data_type::text, start_value, min_value, max_value,
               increment_by, cycle, cache_size
        FROM pg_sequences WHERE schemaname = 'public'""",
    "sequence owners": """
        SELECT s.relname, t.relname, a.attname, d.deptype
        FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
        JOIN pg_class t ON t.oid = d.refobjid
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
        WHERE s.relnamespace = 'public'::regnamespace AND d.classid = 'pg_class'::regclass""",
    "types": """
        SELECT t.typname, t.typtype, format_type(t.typbasetype, t.typtypmod) FROM pg_type t
        WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('d', 'e', 'r')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                          AND d.objid = t.oid AND d.deptype = 'e')""",
    "comments": """
        SELECT c.relname, d.objsubid, d.description FROM pg_description d
        JOIN pg_class c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass
        WHERE c.relnamespace = 'public'::regnamespace""",
}


def _schema(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        return {
            kind: sorted(map(tuple, conn.execute(query).fetchall()), key=repr)
            for kind, query in CATALOG.items()
        }


def _differences(schema: dict, expected: dict) -> dict[str, dict[str, list[tuple]]]:
    """Per kind of object, the rows only ``schema`` has and those only ``expected`` has."""
    found = {}
    for kind in CATALOG:
        extra = set(schema[kind]) - set(expected[kind])
        missing = set(expected[kind]) - set(schema[kind])
        if extra or missing:
            found[kind] = {"extra": sorted(extra, key=repr), "missing": sorted(missing, key=repr)}
    return found


def _recorded(url: str) -> set[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return set(conn.execute("SELECT app, name FROM django_migrations").fetchall())


def _replaced() -> dict[tuple[str, str], list[tuple[str, str]]]:
    return {key: list(m.replaces) for key, m in MigrationLoader(None).replacements.items()}


def _applied(output: str) -> set[tuple[str, str]]:
    """The migrations ``migrate`` printed as applied."""
    return {(app, name) for app, name in re.findall(r"Applying (\w+)\.(\w+)\.\.\. OK", output)}


@pytest.mark.django_db(transaction=True)
def test_the_squashes_build_what_the_migrations_they_replace_build():
    """Also: the migrations build a fresh database from nothing, and it matches the models (one
    migrate from nothing serves both checks; each costs seconds of Django start-ups)."""
    replaced = {key for keys in _replaced().values() for key in keys}
    assert set(_replaced()) == SQUASHES
    with _scratch_database() as before_url, _scratch_database() as fresh_url:
        _manage(before_url, "shell", "--no-imports", "-c", BEFORE_THE_SQUASHES)
        recorded_before = _recorded(before_url)
        assert replaced <= recorded_before
        assert not SQUASHES & recorded_before
        schema_before = _schema(before_url)
        assert ("knowledge_lexemestat", "r", "p") in schema_before["relations"]

        # From nothing, the squashes run instead of the migrations they replace.
        applied = _applied(_manage(fresh_url, "migrate", "--no-input"))
        assert applied >= SQUASHES
        assert not replaced & applied
        assert not _differences(_schema(fresh_url), schema_before)
        _manage(fresh_url, "makemigrations", "--check", "--dry-run")

        # A database made before the squashes only records them.
        output = _manage(before_url, "migrate", "--no-input")
        assert "No migrations to apply." in output, output
        assert _recorded(before_url) == recorded_before | SQUASHES == _recorded(fresh_url)
        assert not _differences(_schema(before_url), schema_before)
        _manage(before_url, "makemigrations", "--check", "--dry-run")


@pytest.mark.django_db(transaction=True)
def test_each_squash_leaves_what_the_migrations_it_replaces_leave():
    """Where the graphs meet again, not only at the end: a later migration may redefine what a
    squash made (knowledge 0006 replaces the statistics trigger's function)."""
    last_replaced = [keys[-1] for keys in _replaced().values()]
    with _scratch_database() as before_url, _scratch_database() as fresh_url:
        _manage(
            before_url,
            "shell",
            "--no-imports",
            "-c",
            BEFORE_THE_SQUASHES,
            MIGRATE_TO=json.dumps(last_replaced),
        )
        for app, name in sorted(SQUASHES):
            _manage(fresh_url, "migrate", "--no-input", app, name)
        schema_before = _schema(before_url)
        assert "knowledge_lexemestat_apply" in {row[0] for row in schema_before["functions"]}
        assert not _differences(_schema(fresh_url), schema_before)
