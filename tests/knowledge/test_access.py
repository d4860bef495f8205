"""The access rule has two spellings (a queryset for pages, one SQL statement for retrieval's
hot path): they must always agree."""

import pytest
from django.contrib.auth.models import AnonymousUser, Group
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knowledge.models import Collection
from knowledge.selectors import collections_readable_by, readable_collection_ids

world = st.fixed_dictionaries(
    {
        "collections": st.lists(
            st.tuples(
                st.booleans(),
                st.sets(st.integers(0, 3), max_size=3),
                st.sets(st.integers(0, 3), max_size=2),
            ),
            max_size=6,
        ),
        "users": st.lists(
            st.tuples(
                st.sets(st.integers(0, 3), max_size=4),
                st.sampled_from(["member", "staff", "superuser", "inactive"]),
            ),
            min_size=1,
            max_size=4,
        ),
    }
)


@pytest.mark.django_db
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(world=world)
def test_readable_ids_agree_with_the_readable_queryset(world, django_user_model):
    with transaction.atomic():
        groups = [Group.objects.create(name=f"g{i}") for i in range(4)]
        for index, (everyone, readers, managers) in enumerate(world["collections"]):
            collection = Collection.objects.create(
                name=f"c{index}",
                visibility=Collection.Visibility.EVERYONE
                if everyone
                else Collection.Visibility.GROUPS,
            )
            collection.read_groups.set([groups[g] for g in readers])
            collection.manage_groups.set([groups[g] for g in managers])
        for index, (member_of, kind) in enumerate(world["users"]):
            user = django_user_model.objects.create_user(
                email=f"u{index}@example.com",
                is_staff=kind == "staff",
                is_superuser=kind == "superuser",
                is_active=kind != "inactive",
            )
            user.groups.set([groups[g] for g in member_of])
            expected = sorted(collections_readable_by(user).values_list("id", flat=True))
            assert readable_collection_ids(user) == expected
            if kind == "inactive":
                assert expected == []
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_an_anonymous_user_or_none_reads_nothing():
    Collection.objects.create(name="open", visibility=Collection.Visibility.EVERYONE)
    assert readable_collection_ids(AnonymousUser()) == []
    assert readable_collection_ids(None) == []
