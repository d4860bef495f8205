"""Personal access tokens: created never wider than the person, stored hashed, shown once,
and checked per request (revocation, expiry, deactivation and group changes apply at once)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AccessToken, AuditEvent
from accounts.tokens import PREFIX_CHARS, TokenError, TokenRefused, token_revoke
from knowledge.tokens import aauthenticate, authenticate, token_create
from tests.support.knowledge import make_collection

pytestmark = pytest.mark.django_db


def bearer(plaintext: str) -> str:
    return f"Bearer {plaintext}"


def refused(header: str | None) -> str:
    with pytest.raises(TokenError) as caught:
        authenticate(header)
    return caught.value.reason


@pytest.fixture
def world(make_user):
    """Ada reads two group collections (one per group) and the open one; Bob reads only the
    open one."""
    from django.contrib.auth.models import Group

    finance, legal = Group.objects.create(name="finance"), Group.objects.create(name="legal")
    ada = make_user(email="ada@example.com")
    ada.groups.add(finance, legal)
    bob = make_user(email="bob@example.com")
    return {
        "ada": ada,
        "bob": bob,
        "finance": finance,
        "legal": legal,
        "open": make_collection("Open", everyone=True),
        "ledgers": make_collection("Ledgers", readers=[finance]),
        "contracts": make_collection("Contracts", readers=[legal]),
    }


# --- create and authenticate ---------------------------------------------------------------


def test_a_new_token_authenticates_as_its_owner_with_everything_they_read(world):
    token, plaintext = token_create(user=world["ada"], name="laptop script")
    auth = authenticate(bearer(plaintext))
    assert auth.user == world["ada"] and auth.token == token
    assert auth.collection_ids == {world[c].pk for c in ("open", "ledgers", "contracts")}
    assert plaintext.startswith("ast_") and len(plaintext) == 47
    assert token.prefix == plaintext[:PREFIX_CHARS] and auth.prefix == token.prefix


def test_the_secret_is_never_stored_only_its_hash_and_it_is_shown_once(world):
    token, plaintext = token_create(user=world["ada"], name="ci")
    row = AccessToken.objects.get(pk=token.pk)
    stored = {f.attname: getattr(row, f.attname) for f in AccessToken._meta.concrete_fields}
    assert plaintext not in map(str, stored.values())
    assert row.secret_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert plaintext not in str(AuditEvent.objects.values())
    # Nothing hands the plaintext out again: the row cannot rebuild it.
    assert not any(plaintext in str(v) for v in vars(row).values())


def test_creation_is_audited_with_the_prefix_and_the_scope(world):
    token, _ = token_create(user=world["ada"], name="ci", collections=[world["ledgers"]])
    event = AuditEvent.objects.get(action=AuditEvent.Action.TOKEN_CREATED)
    assert event.actor == world["ada"] and event.target_id == str(token.pk)
    assert event.detail["prefix"] == token.prefix
    assert event.detail["collections"] == [world["ledgers"].pk]


def test_the_header_scheme_is_case_insensitive_and_surrounding_spaces_are_ignored(world):
    _, plaintext = token_create(user=world["ada"], name="x")
    assert authenticate(f"  bearer   {plaintext}  ").user == world["ada"]


def test_last_use_is_recorded_but_written_at_most_once_a_minute(world):
    token, plaintext = token_create(user=world["ada"], name="x")
    authenticate(bearer(plaintext))
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    with CaptureQueriesContext(connection) as queries:
        authenticate(bearer(plaintext))
    assert not [q for q in queries if q["sql"].startswith("UPDATE")]
    token.refresh_from_db()
    assert token.last_used_at == first
    AccessToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    authenticate(bearer(plaintext))
    token.refresh_from_db()
    assert token.last_used_at > first - timedelta(minutes=1)


# --- refusals, each with its reason --------------------------------------------------------


def test_no_header_is_missing_and_a_wrong_scheme_is_malformed(world):
    _, plaintext = token_create(user=world["ada"], name="x")
    assert refused(None) == "missing"
    assert refused("") == "missing"
    assert refused(f"Basic {plaintext}") == "malformed"
    assert refused(plaintext) == "malformed"


def test_a_well_formed_token_nobody_holds_is_invalid(world):
    _, plaintext = token_create(user=world["ada"], name="x")
    # Same prefix (what the admin shows), different secret: the prefix opens nothing.
    forged = plaintext[:PREFIX_CHARS] + ("A" if plaintext[PREFIX_CHARS] != "A" else "B")
    forged += plaintext[PREFIX_CHARS + 1 :]
    assert refused(bearer(forged)) == "invalid"


def test_a_revoked_token_is_refused_at_once(world):
    token, plaintext = token_create(user=world["ada"], name="x")
    authenticate(bearer(plaintext))
    token_revoke(actor=world["ada"], token=token)
    assert refused(bearer(plaintext)) == "revoked"


def test_an_expired_token_is_refused(world):
    token, plaintext = token_create(user=world["ada"], name="x", expires_days=1)
    assert authenticate(bearer(plaintext)).user == world["ada"]
    AccessToken.objects.filter(pk=token.pk).update(expires_at=timezone.now())
    assert refused(bearer(plaintext)) == "expired"


def test_a_deactivated_owners_token_fails_at_once(world):
    _, plaintext = token_create(user=world["ada"], name="x")
    authenticate(bearer(plaintext))
    type(world["ada"]).objects.filter(pk=world["ada"].pk).update(is_active=False)
    assert refused(bearer(plaintext)) == "inactive"


def test_a_token_whose_owner_stopped_signing_in_is_refused_when_the_rule_is_on(world, settings):
    """Someone who left is removed at the identity provider; the assistant never sees them sign
    in again. With TOKEN_OWNER_SIGN_IN_DAYS their scripts stop without anyone acting here."""
    _, plaintext = token_create(user=world["ada"], name="x")
    ada = type(world["ada"]).objects.filter(pk=world["ada"].pk)
    ada.update(last_login=timezone.now() - timedelta(days=40))
    assert authenticate(bearer(plaintext)).user == world["ada"]  # unset: no such rule

    settings.TOKEN_OWNER_SIGN_IN_DAYS = 30
    assert refused(bearer(plaintext)) == "owner_away"
    ada.update(last_login=None)  # never signed in (an account made for a script)
    assert refused(bearer(plaintext)) == "owner_away"

    ada.update(last_login=timezone.now() - timedelta(days=29))  # signed in again
    assert authenticate(bearer(plaintext)).user == world["ada"]


def test_every_refusal_has_a_message_for_people(world):
    with pytest.raises(TokenError) as caught:
        authenticate("Bearer nope")
    assert "ast_" in caught.value.message and str(caught.value) == caught.value.message


# --- narrowing: never wider than the person, checked per request ---------------------------


def test_a_narrowed_token_reads_only_its_collections(world):
    _, plaintext = token_create(user=world["ada"], name="x", collections=[world["ledgers"]])
    assert authenticate(bearer(plaintext)).collection_ids == {world["ledgers"].pk}


def test_a_token_loses_a_collection_the_moment_its_owner_leaves_the_group(world):
    _, plaintext = token_create(
        user=world["ada"], name="x", collections=[world["ledgers"], world["contracts"]]
    )
    assert authenticate(bearer(plaintext)).collection_ids == {
        world["ledgers"].pk,
        world["contracts"].pk,
    }
    world["ada"].groups.remove(world["finance"])
    # The rest still works; the lost collection is gone from this very next request.
    assert authenticate(bearer(plaintext)).collection_ids == {world["contracts"].pk}
    world["ada"].groups.remove(world["legal"])
    auth = authenticate(bearer(plaintext))
    assert auth.collection_ids == frozenset() and auth.user == world["ada"]


def test_an_unnarrowed_token_follows_the_owners_groups_both_ways(world):
    _, plaintext = token_create(user=world["bob"], name="x")
    assert authenticate(bearer(plaintext)).collection_ids == {world["open"].pk}
    world["bob"].groups.add(world["legal"])
    assert authenticate(bearer(plaintext)).collection_ids == {
        world["open"].pk,
        world["contracts"].pk,
    }


def test_a_token_narrowed_to_deleted_collections_reads_nothing_never_everything(world):
    _, plaintext = token_create(user=world["ada"], name="x", collections=[world["ledgers"]])
    world["ledgers"].delete()
    assert authenticate(bearer(plaintext)).collection_ids == frozenset()


def test_narrowing_wider_than_the_person_is_refused(world):
    for collections in ([world["ledgers"]], [world["ledgers"].pk], [world["open"], 10**9]):
        with pytest.raises(TokenRefused, match="only be narrowed to collections you can read"):
            token_create(user=world["bob"], name="x", collections=collections)
    with pytest.raises(TokenRefused, match="'Ledgers'"):
        token_create(user=world["bob"], name="x", collection_names=["Open", "Ledgers"])
    assert not AccessToken.objects.exists()


def test_a_collection_that_does_not_exist_is_refused_like_a_forbidden_one(world):
    with pytest.raises(TokenRefused) as missing:
        token_create(user=world["bob"], name="x", collection_names=["Nope"])
    with pytest.raises(TokenRefused) as forbidden:
        token_create(user=world["bob"], name="x", collection_names=["Ledgers"])
    assert str(missing.value).replace("Nope", "?") == str(forbidden.value).replace("Ledgers", "?")


def test_collections_by_name_narrow_the_token(world):
    token, _ = token_create(user=world["ada"], name="x", collection_names=[" Contracts ", "Open"])
    assert token.narrowed
    assert set(token.collections.all()) == {world["contracts"], world["open"]}


# --- bad input, named for the attack -------------------------------------------------------


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_an_empty_or_oversized_name_is_refused(world, name):
    with pytest.raises(TokenRefused):
        token_create(user=world["ada"], name=name)


@pytest.mark.parametrize("days", [0, -1, 3651, True, "7"])
def test_an_expiry_outside_1_to_3650_days_is_refused(world, days):
    with pytest.raises(TokenRefused):
        token_create(user=world["ada"], name="x", expires_days=days)


def test_a_deactivated_person_cannot_create_a_token(world):
    world["ada"].is_active = False
    with pytest.raises(TokenRefused):
        token_create(user=world["ada"], name="x")


def test_a_10_kb_header_is_refused_before_any_query(world):
    _, plaintext = token_create(user=world["ada"], name="x")
    with CaptureQueriesContext(connection) as queries:
        assert refused("Bearer " + plaintext + "A" * 10_240) == "malformed"
        assert refused("Bearer " + "A" * 10_240) == "malformed"
        # Even a good token, padded to 10 KB, is refused: the size alone decides.
        assert refused("Bearer " + plaintext + " " * 10_240) == "malformed"
    assert len(queries) == 0


@pytest.mark.parametrize(
    "header",
    [
        "Bearer sk-proj-" + "a" * 40,  # another vendor's key
        "Bearer ghp_" + "a" * 36,
        "Bearer ast_" + "a" * 42,  # one character short
        "Bearer ast_" + "a" * 44,
        "Bearer ast_' OR '1'='1' --" + "a" * 24,
        "Bearer ast_" + "a" * 40 + "%00",
        "Bearer ast_" + "a" * 42 + "\n",
        "Bearer ast_" + "é" * 43,
        "Bearer " + "ast_" + "a" * 43 + " extra",
    ],
)
def test_a_token_of_another_shape_or_sql_ish_junk_is_malformed_without_a_query(world, header):
    with CaptureQueriesContext(connection) as queries:
        assert refused(header) == "malformed"
    assert len(queries) == 0


def test_the_lookup_is_by_hash_so_the_secret_never_reaches_the_database(world):
    """Timing-safe by construction: the database compares SHA-256 digests, never the secret,
    so how fast a guess fails says nothing about any real token."""
    _, plaintext = token_create(user=world["ada"], name="x")
    with CaptureQueriesContext(connection) as queries:
        authenticate(bearer(plaintext))
        refused(bearer(plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")))
    sql = " ".join(q["sql"] for q in queries)
    assert hashlib.sha256(plaintext.encode()).hexdigest() in sql
    assert plaintext[PREFIX_CHARS:] not in sql and plaintext[4:20] not in sql


# --- revocation ----------------------------------------------------------------------------


def test_only_the_owner_or_staff_may_revoke(world, make_user):
    token, plaintext = token_create(user=world["ada"], name="x")
    with pytest.raises(PermissionError):
        token_revoke(actor=world["bob"], token=token)
    assert authenticate(bearer(plaintext)).user == world["ada"]
    staff = make_user(email="ops@example.com", is_staff=True)
    token_revoke(actor=staff, token=token)
    assert refused(bearer(plaintext)) == "revoked"
    event = AuditEvent.objects.get(action=AuditEvent.Action.TOKEN_REVOKED)
    assert event.actor == staff and event.subject == world["ada"]


def test_revoking_twice_is_audited_once(world):
    token, _ = token_create(user=world["ada"], name="x")
    token_revoke(actor=world["ada"], token=token)
    first = AccessToken.objects.get(pk=token.pk).revoked_at
    token_revoke(actor=world["ada"], token=token)
    assert AccessToken.objects.get(pk=token.pk).revoked_at == first
    assert AuditEvent.objects.filter(action=AuditEvent.Action.TOKEN_REVOKED).count() == 1


# --- async doors and logging ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_async_doors_authenticate_the_same_way(make_user):
    from asgiref.sync import sync_to_async

    ada = await sync_to_async(make_user)(email="ada@example.com")
    token, plaintext = await sync_to_async(token_create)(user=ada, name="x")
    auth = await aauthenticate(bearer(plaintext))
    assert auth.user.pk == ada.pk and auth.token.pk == token.pk
    with pytest.raises(TokenError) as caught:
        await aauthenticate("Bearer ast_" + "a" * 43)
    assert caught.value.reason == "invalid"


def test_every_use_and_refusal_is_logged_with_the_prefix_never_the_token(world, caplog):
    token, plaintext = token_create(user=world["ada"], name="x")
    caplog.set_level("INFO", logger="assistant.tokens")
    caplog.clear()
    authenticate(bearer(plaintext))
    authenticate(bearer(plaintext))
    token_revoke(actor=world["ada"], token=token)
    refused(bearer(plaintext))
    lines = [r for r in caplog.records if r.name == "assistant.tokens"]
    assert [r.getMessage() for r in lines] == [
        "token used",
        "token used",
        "token revoked",
        "token refused",
    ]
    assert all(r.token_prefix == token.prefix for r in lines)
    assert lines[-1].reason == "revoked"
    assert not any(plaintext in str(vars(r)) for r in lines)
