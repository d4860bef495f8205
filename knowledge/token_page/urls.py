"""``/accounts/me/tokens/``: the account page's token forms post here."""

from django.urls import path

from knowledge.token_page import views

app_name = "tokens"

urlpatterns = [
    path("new", views.token_new, name="new"),
    path("<int:token_id>/revoke", views.token_revoke_view, name="revoke"),
]
