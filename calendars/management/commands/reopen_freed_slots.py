from django.core.management.base import BaseCommand

from calendars.services import slots_reopen_freed


class Command(BaseCommand):
    help = (
        "Reopen future HELD/BOOKED slots whose session or proposal is gone "
        "(beat: every few minutes)."
    )

    def handle(self, *args, **options):
        count = slots_reopen_freed()
        self.stdout.write(f"Reopened {count} freed slot(s).")
