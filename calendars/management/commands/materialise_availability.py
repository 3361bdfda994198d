from django.core.management.base import BaseCommand

from calendars import services


class Command(BaseCommand):
    help = (
        "Turn the coaches' weekly availability patterns into open slots a rolling number of "
        "weeks ahead (settings.AVAILABILITY_WEEKS_AHEAD; beat: daily)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--weeks", type=int, default=None, help="How many weeks ahead (default: the setting)."
        )

    def handle(self, *args, **options):
        created = services.availability_patterns_materialise(weeks_ahead=options["weeks"])
        self.stdout.write(f"Materialised {created} slot(s) from weekly availability.")
