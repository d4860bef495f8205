"""The project's URLs plus the account routes, for tests of views in accounts/views.py.

(Until assistant/project/urls.py routes them itself; with both, the first match wins - the same view.)
"""

from django.urls import include, path

from accounts import views
from assistant.project.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    path("admin/login/", views.admin_login, name="admin-login"),
    path("accounts/", include("accounts.urls")),
    *project_urlpatterns,
]
