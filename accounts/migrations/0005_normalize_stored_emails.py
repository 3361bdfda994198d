"""Store every existing address in the normal form sign-up and login now use (issue 12).

Without it an address stored before, e.g. with a Unicode domain (ana@bücher.example), would no
longer match what its owner types at login (ana@xn--bcher-kva.example). An address whose normal
form another account already holds is left as it is (the admin decides which account is real);
nothing is deleted. Irreversible in effect; going back leaves the addresses normalised.
"""

from django.db import migrations

from accounts.models import normalize_email_address


def normalize_emails(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    EmailAddress = apps.get_model("account", "EmailAddress")
    for user in User.objects.only("pk", "email").iterator():
        normal = normalize_email_address(user.email)
        if normal == user.email:
            continue
        if User.objects.filter(email__iexact=normal).exclude(pk=user.pk).exists():
            continue
        User.objects.filter(pk=user.pk).update(email=normal)
    for address in EmailAddress.objects.only("pk", "email", "user_id").iterator():
        normal = normalize_email_address(address.email)
        if normal == address.email:
            continue
        taken = EmailAddress.objects.filter(email__iexact=normal).exclude(pk=address.pk)
        if taken.exists():
            continue
        EmailAddress.objects.filter(pk=address.pk).update(email=normal)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_coachprofile_booking_terms"),
        ("account", "0009_emailaddress_unique_primary_email"),
    ]

    operations = [migrations.RunPython(normalize_emails, migrations.RunPython.noop)]
