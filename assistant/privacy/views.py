"""The personal data export: a signed-in person downloads their own data as JSON."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from assistant.privacy.export import export_stream


@require_GET
def export_json(request):
    """Only ever the requester's own data: no id is taken, so there is nobody else to ask for.
    Streamed (an async iterator, so Daphne sends it as it is read rather than buffering it)."""
    user = request.user
    user.pk  # noqa: B018 - loads the lazy user here, in the request, not in the stream's threads
    response = StreamingHttpResponse(
        export_stream(user), content_type="application/json; charset=utf-8"
    )
    day = timezone.localdate().isoformat()
    response["Content-Disposition"] = f'attachment; filename="assistant-my-data-{day}.json"'
    response["Cache-Control"] = "no-store, private"
    return response
