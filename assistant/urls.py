from django.contrib import admin
from django.urls import include, path

from assistant import views

admin.site.site_header = "Assistant administration"
admin.site.site_title = "Assistant admin"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("knowledge/", include("knowledge.urls")),
]
