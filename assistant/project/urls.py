"""The site's URL map: each app's routes, the admin, and the operators' endpoints."""

from django.contrib import admin
from django.urls import include, path

from accounts import views as account_views
from assistant.project import views

admin.site.site_header = "Assistant administration"
admin.site.site_title = "Assistant admin"

urlpatterns = [
    # The chat: "", c/..., api/..., memory/..., and accounts/me/ (before accounts/ below).
    path("", include("assistant.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path(
        "admin/login/", account_views.admin_login, name="admin-login"
    ),  # honours ADMIN_LOCAL_LOGIN
    path("admin/", admin.site.urls),
    path("slack/", include("assistant.slack.urls")),
    # The account page's token forms (the page itself is accounts/me/, above).
    path("accounts/me/tokens/", include("knowledge.token_page.urls")),
    path("accounts/me/", include("assistant.privacy.urls")),  # export.json: your own data
    path("accounts/", include("accounts.urls")),
    path("accounts/", include("allauth.urls")),
    path("knowledge/", include("knowledge.urls")),
    path("insights/", include("assistant.insights.urls")),  # staff only
    path("v1/", include("assistant.api_v1.urls")),  # the OpenAI-compatible API (docs/api.md)
]
