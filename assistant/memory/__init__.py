"""Per-user long-term memory: what a person told the assistant, used only in their answers.

``selectors`` reads (always by owner), ``services`` writes (remember, forget, edit, pause),
``extraction`` learns from a turn with the model in the background, ``views`` is the
"What the assistant remembers about you" page. The items themselves are
``assistant.models.MemoryItem`` and ``MemorySettings``.
"""
