"""The project's URLs plus one view behind ``token_required``, for the decorator's tests
(the real doors, /v1 and /mcp, come with their own URLs)."""

from django.http import JsonResponse
from django.urls import path

from assistant.project.urls import urlpatterns as project_urlpatterns
from knowledge.tokens import token_required


@token_required
def whoami(request):
    auth = request.token_auth
    return JsonResponse(
        {
            "email": request.user.email,
            "prefix": auth.prefix,
            "collections": sorted(auth.collection_ids),
        }
    )


urlpatterns = [path("token-test/whoami", whoami), *project_urlpatterns]
