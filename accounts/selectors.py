"""Reads about accounts, each with its access rule."""

from __future__ import annotations

from importlib import import_module

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
)
from django.utils.crypto import constant_time_compare


def user_for_session(*, user_id: int, session_key: str | None):
    """The user ``session_key`` still signs in as ``user_id``, as the database has them now;
    ``None`` when that session no longer vouches for them.

    The same verdict Django's ``get_user()`` reaches for an HTTP request: the session must
    load through its own store (so an expired one is as gone as a flushed one), name this
    user with a configured backend, the backend must still let them in (inactive users are
    refused), and the stored auth hash must match the user's current one (a changed password
    ends every other session), current ``SECRET_KEY`` or one of ``SECRET_KEY_FALLBACKS``.

    Unlike ``get_user()`` this is a read: it never flushes or cycles the session, since the
    socket asking holds no cookie it could hand a new key to.
    """
    if not session_key:
        return None
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    data = session.load()  # {} for a missing, expired or tampered session, whatever the store
    if not data:
        return None
    try:
        session_user_id = get_user_model()._meta.pk.to_python(data[SESSION_KEY])
        backend_path = data[BACKEND_SESSION_KEY]
    except (KeyError, ValueError, TypeError):
        return None
    if session_user_id != user_id or backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    user = load_backend(backend_path).get_user(session_user_id)
    if user is None or not user.is_active:
        return None
    if not _auth_hash_matches(data.get(HASH_SESSION_KEY), user):
        return None
    return user


def _auth_hash_matches(session_hash: str | None, user) -> bool:
    if not session_hash:
        return False
    if constant_time_compare(session_hash, user.get_session_auth_hash()):
        return True
    return any(
        constant_time_compare(session_hash, fallback)
        for fallback in user.get_session_auth_fallback_hash()
    )


def active_account_for_email(email: str, *, excluding_domain: str = ""):
    """The active account whose email is ``email`` (case-insensitive), or ``None``; accounts
    under ``excluding_domain`` (stand-ins made by another door) never count."""
    account = get_user_model().objects.filter(email__iexact=email).first()
    if account is None or not account.is_active:
        return None
    if excluding_domain and account.email.lower().endswith("@" + excluding_domain.lower()):
        return None
    return account
