"""The Insights page's one write: marking a group of unanswered questions resolved."""

from __future__ import annotations

from assistant.insights import selectors
from assistant.insights.models import GapResolution
from knowledge import embeddings
from knowledge.models import Source
from knowledge.selectors import sources_readable_by


class GapChanged(Exception):
    """The group is no longer on the page (resolved by someone else, or regrouped)."""


def gap_resolve(*, user, days: int, answer_id: str, source_id: int | None = None) -> GapResolution:
    """Stores the group whose representative answer is ``answer_id`` as resolved by ``user``:
    its centroid (recomputed here, never taken from the form), representative question and
    size. ``source_id``: the source added for it (one ``user`` may read; None for none)."""
    group = selectors.gap_group_for_answer(days=days, answer_id=answer_id)
    if group is None:
        raise GapChanged
    # Only a source the admin may read: its name is shown to every staff member afterwards.
    readable = sources_readable_by(user)
    source = readable.filter(pk=source_id).first() if source_id is not None else None
    if source_id is not None and source is None:
        raise Source.DoesNotExist
    return GapResolution.objects.create(
        answer_id=group.answer_id,
        question_count=group.count,
        centroid=group.centroid,
        embedding_model=embeddings.get_embedder().name,
        source=source,
        resolved_by=user,
    )
