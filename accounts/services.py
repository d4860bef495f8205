"""Writes for accounts: what an SSO sign-in changes on the user (profile, groups, flags)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction

from accounts.sso import SSO_STATE_KEY, sso_granted_groups

logger = logging.getLogger(__name__)

GROUP_NAME_MAX_LENGTH = Group._meta.get_field("name").max_length


@transaction.atomic
def user_sync_from_sso(*, user, social_account, name: str, groups: list[str] | None) -> None:
    """Applies one SSO sign-in to ``user``; runs at every sign-in, before the first page.

    - ``name`` (when given) replaces the full name.
    - ``groups`` (``None`` = this provider does not sync groups): Django groups are created as
      needed and joined; groups the previous sign-in through this ``social_account`` granted
      and this one no longer lists are left, unless another of the user's SSO accounts still
      grants them. Groups given by hand in the admin are never removed.
    - With SSO_STAFF_GROUPS or SSO_ADMIN_GROUPS set, the identity provider decides both
      flags: ``is_superuser`` = member of an admin group, ``is_staff`` = member of a staff
      or admin group. With neither set, the flags are left alone.
    """
    changed: list[str] = []
    if name and name != user.full_name:
        user.full_name = name
        changed.append("full_name")
    if groups is not None:
        groups = [g for g in groups if _usable_group_name(g)]
        _sync_groups(user=user, social_account=social_account, groups=groups)
        changed += _sync_flags(user=user, groups=set(groups))
        extra_data = dict(social_account.extra_data or {})
        extra_data[SSO_STATE_KEY] = {"groups": groups}
        social_account.extra_data = extra_data
        social_account.save(update_fields=["extra_data"])
    if changed:
        user.save(update_fields=changed)


def _usable_group_name(name: str) -> bool:
    if len(name) > GROUP_NAME_MAX_LENGTH:
        logger.warning("SSO group name too long, ignored", extra={"group_name": name[:80]})
        return False
    return True


def _sync_groups(*, user, social_account, groups: list[str]) -> None:
    current = set(groups)
    previous = set(sso_granted_groups(social_account.extra_data or {}))
    still_granted_elsewhere: set[str] = set()
    for other in user.socialaccount_set.exclude(pk=social_account.pk):
        still_granted_elsewhere.update(sso_granted_groups(other.extra_data or {}))

    existing = {g.name: g for g in Group.objects.filter(name__in=current)}
    for missing in sorted(current - existing.keys()):
        group, _ = Group.objects.get_or_create(name=missing)
        existing[missing] = group
    if existing:
        user.groups.add(*existing.values())

    to_leave = previous - current - still_granted_elsewhere
    if to_leave:
        user.groups.remove(*Group.objects.filter(name__in=to_leave))
    if to_leave or current - previous:
        logger.info(
            "SSO groups synced",
            extra={
                "user_id": user.pk,
                "groups_joined": sorted(current - previous),
                "groups_left": sorted(to_leave),
            },
        )


def _sync_flags(*, user, groups: set[str]) -> list[str]:
    staff_groups = set(settings.SSO_STAFF_GROUPS)
    admin_groups = set(settings.SSO_ADMIN_GROUPS)
    if not staff_groups and not admin_groups:
        return []
    is_superuser = bool(groups & admin_groups)
    is_staff = bool(groups & (staff_groups | admin_groups))
    changed = []
    if user.is_superuser != is_superuser:
        user.is_superuser = is_superuser
        changed.append("is_superuser")
    if user.is_staff != is_staff:
        user.is_staff = is_staff
        changed.append("is_staff")
    if changed:
        logger.info(
            "SSO changed staff flags",
            extra={"user_id": user.pk, "is_staff": is_staff, "is_superuser": is_superuser},
        )
    return changed
