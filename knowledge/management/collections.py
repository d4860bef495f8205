"""What the knowledge commands share: the collection named on the command line."""

from __future__ import annotations

from collections.abc import Callable

from django.core.management.base import CommandError

from knowledge import services
from knowledge.models import Collection


def named_collection(
    *,
    user,
    name: str,
    create: bool,
    say: Callable[[str], object],
    dry_run: bool = False,
    returncode: int = 1,
) -> Collection:
    """The collection called ``name`` (spaces collapsed). A missing one is an error unless
    ``create``: a mistyped name must not make a new collection. Created, it is readable by staff
    and the groups chosen later; in a ``dry_run`` it is only said (an unsaved instance comes
    back, in which nothing is found). Errors exit with ``returncode``."""
    clean = " ".join(name.split())
    collection = Collection.objects.filter(name=clean).first()
    if collection is not None:
        return collection
    if not create:
        raise CommandError(
            f"No collection is named {clean!r}. Check the name, or pass --create to make it.",
            returncode=returncode,
        )
    if dry_run:
        if not user.is_staff:
            raise CommandError("Only staff may create collections.", returncode=returncode)
        say(f"Would create the collection {clean!r}.")
        return Collection(name=clean)
    try:
        collection, _ = services.collection_get_or_create(
            user=user, name=clean, visibility=Collection.Visibility.GROUPS
        )
    except services.KnowledgeError as exc:
        raise CommandError(str(exc), returncode=returncode) from None
    say(f"Created the collection {collection.name!r}.")
    return collection
