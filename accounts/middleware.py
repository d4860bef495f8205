"""An identity provider that cannot be reached gets a clear page, not a server error."""

from __future__ import annotations

import logging

from django.shortcuts import render

logger = logging.getLogger(__name__)


class ProviderUnreachableMiddleware:
    """allauth fetches a provider's metadata (SAML) or discovery document (OpenID Connect) when
    a sign-in starts. When the network call fails (refused, timed out, DNS; urllib's and
    requests' errors are all ``OSError``), the person sees what happened and what to do, with
    status 502, and the operator gets a log line naming the cause."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not request.path.startswith("/accounts/") or not isinstance(exception, OSError):
            return None
        logger.warning(
            "identity provider unreachable",
            extra={"path": request.path, "error": f"{type(exception).__name__}: {exception}"},
        )
        return render(request, "socialaccount/provider_unreachable.html", status=502)
