"""Which database errors make indexing wait and try again (the database is away) and which
fail the source (the database refused the work): classified on real errors from the real
PostgreSQL, not on made-up exceptions."""

from __future__ import annotations

import threading

import psycopg
import pytest
from django.db import OperationalError, connection, transaction

from knowledge.tasks import database_away
from tests.support import processes
from tests.support.processes import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_statement_timeout_is_the_works_own_failure_not_an_outage():
    with pytest.raises(OperationalError) as caught, transaction.atomic(), connection.cursor() as c:
        c.execute("SET LOCAL statement_timeout = 1")
        c.execute("SELECT pg_sleep(0.5)")

    assert caught.value.__cause__.sqlstate == "57014"
    assert database_away(caught.value) is False


def test_a_refused_connection_is_an_outage():
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(host="127.0.0.1", port=free_port(), dbname="x", connect_timeout=2)

    assert database_away(caught.value) is True


def test_a_server_ending_the_session_is_an_outage():
    with (
        psycopg.connect(processes.test_database_url()) as conn,
        pytest.raises(psycopg.Error) as caught,
    ):
        conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    assert caught.value.sqlstate == "57P01"
    assert database_away(caught.value) is True


def test_a_deadlock_victim_is_tried_again():
    """Two sessions each holding the row the other wants: PostgreSQL ends one of them."""
    url = processes.test_database_url()
    with psycopg.connect(url, autocommit=True) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS deadlock_probe (id int PRIMARY KEY)")
        setup.execute("INSERT INTO deadlock_probe VALUES (1), (2) ON CONFLICT DO NOTHING")
    first, second = psycopg.connect(url), psycopg.connect(url)
    try:
        first.execute("SET deadlock_timeout = '100ms'")
        second.execute("SET deadlock_timeout = '100ms'")
        first.execute("UPDATE deadlock_probe SET id = id WHERE id = 1")
        second.execute("UPDATE deadlock_probe SET id = id WHERE id = 2")
        errors: list[BaseException] = []

        def cross(conn, row):
            try:
                conn.execute("UPDATE deadlock_probe SET id = id WHERE id = %s", [row])
            except psycopg.Error as exc:
                errors.append(exc)
                conn.rollback()

        other = threading.Thread(target=cross, args=(first, 2))
        other.start()
        cross(second, 1)
        other.join(10)
        assert [e.sqlstate for e in errors] == ["40P01"]
        assert database_away(errors[0]) is True
    finally:
        first.close()
        second.close()
        with psycopg.connect(url, autocommit=True) as cleanup:
            cleanup.execute("DROP TABLE deadlock_probe")
