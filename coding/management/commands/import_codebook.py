"""Import a codebook (JSON or CSV) into a project: missing nodes are created, existing ones
(same path) get the file's description, colour and shortcut. All or nothing."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from coding import codebook_io, services
from coding.models import Project


class Command(BaseCommand):
    help = "Import a codebook from a .json or .csv file (path, description, colour, shortcut) into a project."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="The codebook file (.json or .csv).")
        parser.add_argument("--project", required=True, help="Slug of the project.")
        parser.add_argument("--actor", help="Username recorded in the audit trail (default: none, a script).")

    def handle(self, *args, **options) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"There is no project with slug {options['project']!r}.")
        actor = None
        if options["actor"]:
            actor = get_user_model().objects.filter(username=options["actor"]).first()
            if actor is None:
                raise CommandError(f"There is no user {options['actor']!r}.")
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path} is not a file.")
        parsed = codebook_io.read_codebook(path.name, path.read_bytes())
        problems = parsed.problems
        if not problems:
            try:
                result = services.import_codebook(
                    actor=actor, project=project, entries=parsed.entries, source=path.name
                )
            except services.ImportRefused as exc:
                problems = exc.problems
        if problems:
            for problem in problems:
                self.stderr.write(str(problem))
            raise CommandError(f"{len(problems)} problem(s) found; the codebook was not changed.")
        self.stdout.write(
            f"Codebook of {project.slug}: {result.created} node(s) created, {result.updated} updated, "
            f"{result.unchanged} unchanged."
        )
