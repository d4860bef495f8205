"""The chat's pages and JSON API (included at the site root by ``assistant/project/urls.py``)."""

from django.urls import path

from assistant import api, views
from assistant.memory import views as memory_views

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
    path(
        "api/conversations/<uuid:conversation_id>/remember",
        api.conversation_remember,
        name="api-conversation-remember",
    ),
    path("memory/", memory_views.memory_page, name="memory"),
    path("memory/add", memory_views.memory_add, name="memory-add"),
    path("memory/<int:item_id>/edit", memory_views.memory_edit, name="memory-edit"),
    path("memory/<int:item_id>/delete", memory_views.memory_delete, name="memory-delete"),
    path("memory/delete-all", memory_views.memory_delete_all, name="memory-delete-all"),
    path("memory/pause", memory_views.memory_pause, name="memory-pause"),
    path("memory/learning", memory_views.memory_learning, name="memory-learning"),
    path("accounts/me/", views.account, name="account"),
]
