"""The test database after a transactional test: every table emptied, except the content types,
permissions and migration history, which must stay exactly what the models and migrations make
(tests/support/database.py keeps them instead of rebuilding them after every test)."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection

from knowledge.models import Collection
from tests.support.database import KEPT_TABLES, emptied_tables

pytestmark = pytest.mark.django_db(transaction=True)


def _rows(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{table}"')
        return cursor.fetchone()[0]


def _expected_permissions() -> int:
    return sum(
        len(model._meta.default_permissions) + len(model._meta.permissions)
        for model in apps.get_models()
    )


def test_a_transactional_test_leaves_rows_behind(make_user):
    # This test writes; the next one checks that none of it survived the teardown.
    person = make_user(email="left@example.com")
    person.groups.add(Group.objects.create(name="left-behind"))
    Collection.objects.create(name="Left behind")


def test_the_next_test_finds_every_table_empty_but_the_kept_ones():
    assert {table: _rows(table) for table in emptied_tables() if _rows(table)} == {}
    assert {"django_content_type", "auth_permission"} <= KEPT_TABLES


def test_content_types_and_permissions_are_still_exactly_what_the_models_make():
    assert ContentType.objects.count() == len(apps.get_models())
    assert Permission.objects.count() == _expected_permissions()
    codename = Collection._meta.default_permissions[0] + "_collection"
    assert Permission.objects.filter(codename=codename).exists()
