"""Signals other apps listen to, so knowledge does not import them."""

from django.dispatch import Signal

# Sent by ``manage.py reindex`` inside its transaction when the embedding model changes, after
# the chunk column was resized. Arguments: ``embedder`` (the new one), ``old_name``,
# ``old_dimensions``. Anything else that stores vectors (user memory) must re-embed them.
embedding_model_changed = Signal()
