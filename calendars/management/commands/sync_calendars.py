from django.core.management.base import BaseCommand

from calendars.services import external_calendars_sync


class Command(BaseCommand):
    help = (
        "Fetch every coach's active external calendars and bring their stored busy times in "
        "line (beat: every CALENDAR_SYNC_EVERY_SECONDS). Prints one summary line "
        "(calendars, failed, busy times added and removed); each calendar that could not be "
        "read is listed on stderr."
    )

    def handle(self, *args, **options):
        result = external_calendars_sync()
        for calendar_id, error in sorted(result.errors.items()):
            self.stderr.write(f"calendar {calendar_id}: {error}")
        self.stdout.write(str(result))
