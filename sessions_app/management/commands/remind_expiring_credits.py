from django.core.management.base import BaseCommand

from sessions_app.services import packages_remind_expiring


class Command(BaseCommand):
    help = (
        "Email students whose unused credits expire in 14 or 2 days, each reminder once per "
        "expiry date (beat: every 15 minutes)."
    )

    def handle(self, *args, **options):
        count = packages_remind_expiring()
        self.stdout.write(f"Wrote {count} credit expiry reminder(s).")
