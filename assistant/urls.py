from django.contrib import admin
from django.urls import include, path

from accounts import views as account_views
from assistant import api, memory_views, views
from assistant.slack import views as slack_views

admin.site.site_header = "Assistant administration"
admin.site.site_title = "Assistant admin"

urlpatterns = [
    path("", views.home, name="home"),
    path("c/<uuid:conversation_id>", views.home, name="conversation"),
    path("api/conversations", api.conversation_list, name="api-conversations"),
    path(
        "api/conversations/<uuid:conversation_id>", api.conversation_detail, name="api-conversation"
    ),
    path(
        "api/conversations/<uuid:conversation_id>/rename",
        api.conversation_rename,
        name="api-conversation-rename",
    ),
    path(
        "api/conversations/<uuid:conversation_id>/delete",
        api.conversation_delete,
        name="api-conversation-delete",
    ),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("memory/", memory_views.memory_page, name="memory"),
    path("memory/add", memory_views.memory_add, name="memory-add"),
    path("memory/<int:item_id>/edit", memory_views.memory_edit, name="memory-edit"),
    path("memory/<int:item_id>/delete", memory_views.memory_delete, name="memory-delete"),
    path("memory/delete-all", memory_views.memory_delete_all, name="memory-delete-all"),
    path("memory/pause", memory_views.memory_pause, name="memory-pause"),
    path(
        "api/conversations/<uuid:conversation_id>/remember",
        api.conversation_remember,
        name="api-conversation-remember",
    ),
    path(
        "admin/login/", account_views.admin_login, name="admin-login"
    ),  # honours ADMIN_LOCAL_LOGIN
    path("admin/", admin.site.urls),
    path("slack/events", slack_views.events, name="slack-events"),
    path("slack/commands", slack_views.commands, name="slack-commands"),
    path("slack/interactions", slack_views.interactions, name="slack-interactions"),
    path("slack/link/<str:token>", slack_views.link, name="slack-link"),
    path("accounts/me/", views.account, name="account"),
    path("accounts/", include("accounts.urls")),
    path("accounts/", include("allauth.urls")),
    path("knowledge/", include("knowledge.urls")),
]
