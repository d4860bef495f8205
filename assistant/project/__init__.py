"""The project's wiring: settings, URLs, ASGI and WebSocket routing, the Celery app, logging and
request ids, health checks, and the two helpers domain code may use (``tasking``, ``threads``).

Nothing here holds a product rule. The chat domain is the rest of ``assistant/``; the
development stack (the embedded launcher, the local model) is ``assistant/devstack/``, which
no production module imports.
"""
