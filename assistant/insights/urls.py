"""Insights (included at ``insights/`` by ``assistant/project/urls.py``)."""

from django.urls import path

from assistant.insights import views

app_name = "insights"

urlpatterns = [
    path("", views.insights_page, name="index"),
    path("gaps/resolve", views.gap_resolve, name="gap_resolve"),
    path("<slug:table>.csv", views.insights_csv, name="csv"),
]
