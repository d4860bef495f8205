"""The answering pipeline and its parts: one service turns (user, conversation, question) into a
stream of events, whichever door asked (the socket, Slack, the CLI).

``pipeline`` runs it (retrieval, memory, prompt, model, citations, storage); ``prompts`` builds
the prompt from template files; ``citations`` finds ``[n]`` markers in the streamed text;
``grounding`` checks what the answer says against its sources; ``cache`` answers a repeated
first question at once; ``events`` are the dataclasses it yields; ``metrics`` counts it;
``generation`` runs an answer as a task independent of the socket that asked for it.
"""
