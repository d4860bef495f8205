"""The OpenAI-compatible API (``/v1/``): the same answering pipeline as the chat, reached with a
personal access token by any client that speaks OpenAI's chat completions (docs/api.md).

``protocol`` reads OpenAI's request shape and writes its responses (no database);
``services`` stores the question (and a fresh conversation's earlier turns);
``runner`` drives ``answering.pipeline.answer_stream``; ``views`` and ``urls`` are the door.
"""
