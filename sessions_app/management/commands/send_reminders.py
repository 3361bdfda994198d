from django.core.management.base import BaseCommand

from sessions_app.services import sessions_send_reminders


class Command(BaseCommand):
    help = (
        "Email the due 24 h and 1 h reminders of confirmed sessions, each once per agreed time "
        "(beat: every 5 minutes)."
    )

    def handle(self, *args, **options):
        count = sessions_send_reminders()
        self.stdout.write(f"Sent reminders for {count} session(s).")
