from django.core.management.base import BaseCommand

from calendars.services import slots_reopen_freed


class Command(BaseCommand):
    help = (
        "Release HELD/BOOKED reservations whose session or proposal no longer holds them, so "
        "their time is bookable again (beat: every few minutes)."
    )

    def handle(self, *args, **options):
        count = slots_reopen_freed()
        self.stdout.write(f"Released {count} reservation(s) with no active holder.")
