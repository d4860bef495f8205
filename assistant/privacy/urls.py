"""Included at ``accounts/me/`` by assistant/project/urls.py, beside the account page."""

from django.urls import path

from assistant.privacy import views

urlpatterns = [
    path("export.json", views.export_json, name="account-export"),
]
