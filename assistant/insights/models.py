"""A group of unanswered questions an admin marked resolved (registered with the ``assistant``
app: ``assistant/models.py`` imports it)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from pgvector.django import VectorField


class GapResolution(models.Model):
    """The group is kept as its centroid: later questions near it (``selectors.resolutions``)
    show whether the fix worked. The vector has no fixed size and names its model, so a switch
    of embedding model leaves old rows unmatched instead of comparing vectors of two spaces."""

    # The group's representative answer; its question is read through it, never copied, so
    # erasing the person or the retention policy deleting the conversation takes the words.
    answer = models.ForeignKey(
        "assistant.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    question_count = models.PositiveIntegerField(default=0)
    centroid = VectorField()
    embedding_model = models.CharField(max_length=200)
    source = models.ForeignKey(
        "knowledge.Source",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The source added to answer these questions, if any.",
    )
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        app_label = "assistant"
        ordering = ["-resolved_at", "-id"]

    def __str__(self) -> str:
        return self.question[:60] or f"a group of {self.question_count} questions"

    @property
    def question(self) -> str:
        """The representative question's words, or "" once its conversation is gone."""
        question = self.answer.reply_to if self.answer is not None else None
        return question.content if question is not None else ""
