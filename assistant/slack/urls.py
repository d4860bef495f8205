"""Slack's webhooks and the one-time link page (included under ``slack/``)."""

from django.urls import path

from assistant.slack import views

urlpatterns = [
    path("events", views.events, name="slack-events"),
    path("commands", views.commands, name="slack-commands"),
    path("interactions", views.interactions, name="slack-interactions"),
    path("link/<str:token>", views.link, name="slack-link"),
]
