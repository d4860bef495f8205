"""python manage.py retention [--dry-run]"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from assistant.privacy.retention import Line, Report, retention_apply, retention_plan


class Command(BaseCommand):
    help = (
        "Apply the retention policy (RETENTION_*_DAYS) now: delete conversations, Slack "
        "deliveries, feedback and audit events older than it allows. With --dry-run, only "
        "say what would be deleted."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would go; delete nothing"
        )

    def handle(self, *args, dry_run: bool, **options):
        report = retention_plan() if dry_run else retention_apply()
        if not report.active:
            self.stdout.write(
                "No retention policy is set (RETENTION_CONVERSATION_DAYS, RETENTION_SLACK_DAYS, "
                "RETENTION_FEEDBACK_DAYS, RETENTION_AUDIT_DAYS): everything is kept."
            )
            return
        if report.skipped:
            self.stdout.write("Another retention run is in progress: this one did nothing.")
            return
        self.stdout.write(
            "Retention (dry run: nothing is deleted):" if dry_run else "Retention applied:"
        )
        for line in report.lines:
            self.stdout.write(f"  {_describe(line, report)}")


def _describe(line: Line, report: Report) -> str:
    if line.kept:
        return f"{line.kind.label}: kept ({line.kind.setting} is not set)"
    verb = "would be deleted" if report.dry_run else "deleted"
    messages = f" with {line.messages} message(s)" if line.messages else ""
    return (
        f"{line.kind.label}: {line.count}{messages} {verb} "
        f"({line.kind.age} before {line.cutoff:%Y-%m-%d %H:%M %Z}; "
        f"{line.kind.setting}={line.days})"
    )
