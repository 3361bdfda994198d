from django.core.management.base import BaseCommand

from sessions_app.services import sessions_expire_stale


class Command(BaseCommand):
    help = (
        "Expire booking requests and reschedule proposals past their window (what beat runs "
        "every minute): a request's time is released and its credit returns; a proposal's time "
        "is released and its session stays at the agreed time. Each writes its event."
    )

    def handle(self, *args, **options):
        count = sessions_expire_stale()
        self.stdout.write(f"Expired {count} stale request(s) and reschedule proposal(s).")
