"""Emptying the test database after a transactional test, without rebuilding what never changes.

Django's ``TransactionTestCase`` flushes every table after each test and then re-runs the
``post_migrate`` handlers, which recreate every content type and permission row by row: about
0.4 s a test here, paid by the suite's ~300 transactional tests. No test writes content types
or permissions (they are derived from the models), so they are kept, and so is the migration
history; every other table is truncated exactly as Django's flush does.
"""

from __future__ import annotations

from django.core.management.color import no_style
from django.db import OperationalError, connections, transaction

# Derived from the models and the migrations, never written by a test.
KEPT_TABLES = frozenset({"django_content_type", "auth_permission", "django_migrations"})
# A module's own Daphne or worker may still be writing when a test ends (they are stopped with
# the module): PostgreSQL then picks one side of a deadlock to abort, and it may be the
# TRUNCATE. Trying again is what PostgreSQL asks of the aborted side.
DEADLOCK = "40P01"
ATTEMPTS = 3


def emptied_tables(using: str = "default") -> list[str]:
    connection = connections[using]
    names = connection.introspection.django_table_names(only_existing=True, include_views=False)
    return sorted(set(names) - KEPT_TABLES)


def empty_database(using: str = "default") -> None:
    """Truncate every table but ``KEPT_TABLES``, in one statement (what ``flush`` runs)."""
    connection = connections[using]
    statements = connection.ops.sql_flush(
        no_style(), emptied_tables(using), reset_sequences=False, allow_cascade=False
    )
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with transaction.atomic(using=using), connection.cursor() as cursor:
                for sql in statements:
                    cursor.execute(sql)
            return
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != DEADLOCK or attempt == ATTEMPTS:
                raise


def install_fast_teardown() -> None:
    """Transactional tests end with ``empty_database`` instead of a full flush (unless a test
    narrows ``available_apps`` or asks for a serialized rollback: Django's own way then)."""
    from django.test import TransactionTestCase

    original = TransactionTestCase._fixture_teardown

    def _fixture_teardown(self):
        if self.available_apps is not None or self.serialized_rollback:
            return original(self)
        for db_name in self._databases_names(include_mirrors=False):
            empty_database(db_name)

    TransactionTestCase._fixture_teardown = _fixture_teardown
