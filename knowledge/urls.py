from django.urls import path

from knowledge import views

app_name = "knowledge"

urlpatterns = [
    path("", views.index, name="index"),
    path("collections/new", views.collection_create, name="collection_create"),
    path("collections/<int:collection_id>/upload", views.source_upload, name="source_upload"),
    path("collections/<int:collection_id>/urls", views.source_add_url, name="source_add_url"),
    path("collections/<int:collection_id>/sitemaps", views.sitemap_add, name="sitemap_add"),
    path("sources/status", views.sources_status, name="sources_status"),
    path("sources/rows", views.source_rows, name="source_rows"),
    path("sources/<int:source_id>/", views.source_detail, name="source_detail"),
    path("sources/<int:source_id>/status", views.source_status, name="source_status"),
    path("sources/<int:source_id>/row", views.source_row, name="source_row"),
    path("sources/<int:source_id>/reindex", views.source_reindex, name="source_reindex"),
    path("sources/<int:source_id>/delete", views.source_delete, name="source_delete"),
]
