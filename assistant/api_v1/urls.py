"""``/v1/``: the OpenAI-compatible API (included by ``assistant/project/urls.py``)."""

from django.urls import path, re_path

from assistant.api_v1 import views

app_name = "api_v1"

urlpatterns = [
    path("models", views.models, name="models"),
    path("models/<str:model>", views.model_detail, name="model"),
    path("chat/completions", views.chat_completions, name="chat-completions"),
    # Anything else under /v1/ answers in OpenAI's shape, not with the site's HTML 404 page.
    re_path(r"^(?P<rest>.*)$", views.not_found, name="not-found"),
]
