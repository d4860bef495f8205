from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    # allauth's account app is already "Accounts" in the admin index; one name, one section.
    verbose_name = "People and audit trail"
    default_auto_field = "django.db.models.BigAutoField"
