"""Writes for accounts: what an SSO sign-in changes on the user (profile, groups, flags), and
the stand-in accounts other doors create for people known only to them."""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction

from accounts.audit import Action, audit_record
from accounts.sso import SSO_STATE_KEY, GroupRules, sso_granted_flags, sso_granted_groups

logger = logging.getLogger(__name__)

GROUP_NAME_MAX_LENGTH = Group._meta.get_field("name").max_length


@transaction.atomic
def user_sync_from_sso(
    *,
    user,
    social_account,
    name: str,
    groups: list[str] | None,
    rules: GroupRules | None = None,
) -> None:
    """Applies one SSO sign-in to ``user``; runs at every sign-in, before the first page.

    - ``name`` (when given) replaces the full name.
    - ``groups`` (``None`` = this provider does not sync groups) are the claim's values;
      ``rules`` (the provider's, see ``sso.GroupRules``; none = names as sent, no rights)
      turns them into Django group names. Those groups are created as needed and joined;
      groups the previous sign-in through this ``social_account`` granted and this one no
      longer lists are left, unless another of the user's SSO accounts still grants them.
      Groups given by hand in the admin are never removed.
    - When the provider has staff or admin groups, it decides both flags: ``is_superuser`` =
      its claim lists an admin group, ``is_staff`` = a staff or admin group; rights another
      of the user's SSO accounts granted at its last sign-in are kept. A provider without
      them leaves the flags alone.

    Every change of groups or flags is audited (actor: the system; subject: the user).
    """
    rules = rules or GroupRules(provider_id=social_account.provider)
    changed: list[str] = []
    if name and name != user.full_name:
        user.full_name = name
        changed.append("full_name")
    if groups is not None:
        names = [g for g in rules.django_group_names(groups) if _usable_group_name(g)]
        _sync_groups(user=user, social_account=social_account, groups=names, rules=rules)
        state: dict = {"groups": names}
        if rules.decides_flags:
            is_staff, is_superuser = rules.flags(groups)
            state["flags"] = {"is_staff": is_staff, "is_superuser": is_superuser}
            changed += _sync_flags(
                user=user, social_account=social_account, granted=(is_staff, is_superuser)
            )
        extra_data = dict(social_account.extra_data or {})
        extra_data[SSO_STATE_KEY] = state
        social_account.extra_data = extra_data
        social_account.save(update_fields=["extra_data"])
    if changed:
        user.save(update_fields=changed)


def _usable_group_name(name: str) -> bool:
    if len(name) > GROUP_NAME_MAX_LENGTH:
        logger.warning("SSO group name too long, ignored", extra={"group_name": name[:80]})
        return False
    return True


def _other_sso_accounts(*, user, social_account):
    return user.socialaccount_set.exclude(pk=social_account.pk)


def _sync_groups(*, user, social_account, groups: list[str], rules: GroupRules) -> None:
    current = set(groups)
    previous = set(sso_granted_groups(social_account.extra_data or {}))
    still_granted_elsewhere: set[str] = set()
    for other in _other_sso_accounts(user=user, social_account=social_account):
        still_granted_elsewhere.update(sso_granted_groups(other.extra_data or {}))
    member_of = set(user.groups.values_list("name", flat=True))

    existing = {g.name: g for g in Group.objects.filter(name__in=current)}
    for missing in sorted(current - existing.keys()):
        group, _ = Group.objects.get_or_create(name=missing)
        existing[missing] = group
    if existing:
        user.groups.add(*existing.values())

    to_leave = previous - current - still_granted_elsewhere
    if to_leave:
        user.groups.remove(*Group.objects.filter(name__in=to_leave))
    joined, left = sorted(current - member_of), sorted(to_leave & member_of)
    if joined:
        audit_record(
            actor=None,
            action=Action.SSO_GROUPS_GRANTED,
            subject=user,
            detail={"provider": rules.provider_id, "groups": joined},
        )
    if left:
        audit_record(
            actor=None,
            action=Action.SSO_GROUPS_REVOKED,
            subject=user,
            detail={"provider": rules.provider_id, "groups": left},
        )
    if joined or left:
        logger.info(
            "SSO groups synced",
            extra={"user_id": user.pk, "groups_joined": joined, "groups_left": left},
        )


def _sync_flags(*, user, social_account, granted: tuple[bool, bool]) -> list[str]:
    is_staff, is_superuser = granted
    # Rights another provider granted at its own last sign-in stay until that provider
    # takes them away, as groups do; this provider can only add its own.
    for other in _other_sso_accounts(user=user, social_account=social_account):
        other_staff, other_superuser = sso_granted_flags(other.extra_data or {})
        is_staff, is_superuser = is_staff or other_staff, is_superuser or other_superuser
    before = {"is_staff": user.is_staff, "is_superuser": user.is_superuser}
    after = {"is_staff": is_staff, "is_superuser": is_superuser}
    if before == after:
        return []
    user.is_staff, user.is_superuser = is_staff, is_superuser
    audit_record(
        actor=None,
        action=Action.SSO_FLAGS_CHANGED,
        subject=user,
        detail={"provider": social_account.provider, "before": before, "after": after},
    )
    logger.info("SSO changed staff flags", extra={"user_id": user.pk, **after})
    return [field for field in after if before[field] != after[field]]


def provisional_account_create(*, email: str, full_name: str = ""):
    """A new account with no usable password, for someone another door knows only by an
    address no identity provider can vouch for (e.g. ``…@slack.invalid``). It belongs to no
    group, so it reads only knowledge open to everyone. ``None`` when the address is already
    taken: a stand-in is never attached to an existing account."""
    try:
        with transaction.atomic():
            return get_user_model().objects.create_user(email=email, full_name=full_name[:200])
    except IntegrityError:
        logger.warning("provisional address taken", extra={"email": email})
        return None
