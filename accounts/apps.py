from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    # allauth's "account" app is also called "Accounts" in the admin index: keep them apart.
    verbose_name = "Users and coaches"
    default_auto_field = "django.db.models.BigAutoField"
