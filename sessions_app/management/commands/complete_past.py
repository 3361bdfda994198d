from django.core.management.base import BaseCommand

from sessions_app.services import sessions_complete_past


class Command(BaseCommand):
    help = "Mark confirmed sessions whose end has passed as completed (beat: every few minutes)."

    def handle(self, *args, **options):
        count = sessions_complete_past()
        self.stdout.write(f"Completed {count} past session(s).")
