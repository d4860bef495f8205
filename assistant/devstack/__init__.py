"""The development stack: what ``make run`` and ``make test`` start around the app.

``launcher`` starts the embedded PostgreSQL, Redis, the local model server, a worker and
Daphne (``python -m assistant.embedded``); ``localmodel`` pins the local chat models and how
they get from PyPI to llama.cpp; ``processes`` starts and stops the children. None of it is
imported by the app: the launcher tells the app what it started through the environment
(``DATABASE_URL``, ``REDIS_URL``, ``OPENAI_BASE_URL``, ``LLM_MODEL``, ...), the same variables
an operator sets in production; for a second terminal, ``run`` writes the same variables to
``VAR_DIR/run.env``, which ``manage.py`` reads (``assistant/project/run_env.py``) only when
nothing is configured explicitly.
"""
