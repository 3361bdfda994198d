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
        result = services.availability_patterns_materialise(weeks_ahead=options["weeks"])
        if isinstance(result, int):
            self.stdout.write(f"Materialised {result} slot(s) from weekly availability.")
        else:
            self.stdout.write(f"Materialised weekly availability: {result}")
