"""Import policies from a table, document, zip archive or folder into a project.

    python manage.py import_policies PATH --project SLUG [--segment RULE] [--dry-run] [--update]

All or nothing: every problem is listed with its file, row and column, the command exits
non-zero and nothing is written. Reading is ``coding.importing``; checking and writing are
``coding.services.plan_policy_import`` / ``import_policies``, the same the import page uses.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from coding import importing, services
from coding.models import Project
from coding.segmentation import RULES

STAGES = {"read": "Reading ", "check": "Checking", "write": "Writing "}


class ProgressBar:
    """A plain text progress bar on stderr: redrawn in place on a terminal, one line per
    tenth otherwise (logs and CI stay readable)."""

    def __init__(self, stream, *, enabled: bool = True, width: int = 30) -> None:
        self.stream = stream
        self.enabled = enabled
        self.width = width
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.last: tuple[str, int] | None = None
        self.open_line = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        step = done * 100 // total if self.tty else done * 10 // total * 10
        if self.last == (stage, step):
            return
        if self.last and self.last[0] != stage:
            self.finish()
        self.last = (stage, step)
        filled = self.width * done // total
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"{STAGES.get(stage, stage)} [{bar}] {done * 100 // total:3d}% {done:,}/{total:,}"
        if self.tty:
            self.stream.write("\r" + line, ending="")
            self.stream.flush()
            self.open_line = True
        else:
            self.stream.write(line)

    def finish(self) -> None:
        if self.open_line:
            self.stream.write("")
            self.open_line = False


class Command(BaseCommand):
    help = (
        "Import policies from PATH (a .csv/.xlsx/.json table, a .txt/.docx/.pdf/.html document, a .zip, or a "
        "folder of documents with an optional metadata table) into a project. All or nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", help="File or folder to import.")
        parser.add_argument("--project", required=True, help="Slug of the project to import into.")
        parser.add_argument("--segment", default="article", choices=RULES, help="Clause rule (default: article).")
        parser.add_argument("--dry-run", action="store_true", help="Show what would be imported; write nothing.")
        parser.add_argument(
            "--update",
            action="store_true",
            help="Change the existing policies with these numbers (e.g. attach texts to catalogue entries).",
        )
        parser.add_argument("--actor", help="Username recorded in the audit trail (default: none, a script).")
        parser.add_argument(
            "--max-size-mb",
            type=int,
            default=settings.MAX_UPLOAD_MB,
            help="Largest file or folder accepted, in MB (default: MAX_UPLOAD_MB, %(default)s).",
        )

    def handle(self, *args, **options) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"There is no project with slug {options['project']!r}.")
        actor = None
        if options["actor"]:
            actor = get_user_model().objects.filter(username=options["actor"]).first()
            if actor is None:
                raise CommandError(f"There is no user {options['actor']!r}.")
        if options["max_size_mb"] <= 0:
            raise CommandError("--max-size-mb must be a positive number of megabytes.")
        rule, update = options["segment"], options["update"]
        bar = ProgressBar(self.stderr, enabled=options["verbosity"] > 0)
        parsed = importing.read_path(
            options["path"], limits=importing.Limits.from_megabytes(options["max_size_mb"]), update=update, progress=bar
        )
        if options["dry_run"]:
            plan = services.plan_policy_import(project=project, parsed=parsed, rule=rule, update=update, progress=bar)
            bar.finish()
            self._report_plan(plan)
            if plan.problems:
                self._fail(plan.problems)
            self.stdout.write("Dry run: nothing was written.")
            return
        try:
            result = services.import_policies(
                actor=actor, project=project, parsed=parsed, rule=rule, update=update, progress=bar
            )
        except services.ImportRefused as exc:
            bar.finish()
            self._fail(exc.problems)
        bar.finish()
        for notice in parsed.notices:
            self.stdout.write(notice)
        self.stdout.write(
            f"Imported into {project.slug}: {len(result.created)} created, {len(result.updated)} updated, "
            f"{len(result.unchanged)} unchanged; {result.clauses:,} clauses under rule '{rule}'."
        )

    def _report_plan(self, plan: services.PolicyImportPlan) -> None:
        summary = plan.summary()
        for notice in summary["notices"]:
            self.stdout.write(notice)
        verb = "update" if plan.update else "create"
        self.stdout.write(
            f"Would {verb} {summary['policies']} policies ({summary['with_text']} with text, "
            f"{summary['policies'] - summary['with_text']} catalogue entries without), "
            f"{summary['clauses']:,} clauses under rule '{plan.rule}'."
        )
        if summary["encodings"]:
            encodings = ", ".join(f"{name} ×{count}" for name, count in summary["encodings"].items())
            self.stdout.write(f"Encodings detected: {encodings}.")
        self.stdout.write(f"{'No.':>5}  {'Clauses':>7}  {'Rule':<9}  {'Encoding':<15}  {'Source':<36}  Title")
        for row in summary["rows"]:
            clauses = "—" if row["clauses"] is None else str(row["clauses"])
            source = row["source"].rsplit("/", 1)[-1]
            source = source if len(source) <= 36 else source[:35] + "…"
            self.stdout.write(
                f"{row['number']:>5}  {clauses:>7}  {row['rule_used']:<9}  {row['encoding']:<15}  {source:<36}  "
                f"{row['title']}"
            )

    def _fail(self, problems) -> None:
        for problem in problems:
            self.stderr.write(str(problem))
        raise CommandError(f"{len(problems)} problem(s) found; nothing was imported.")
