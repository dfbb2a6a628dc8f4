"""Export a project's codebook as JSON (nested, as import_codebook reads it) or CSV."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from coding import codebook_io
from coding.models import Node, Project


class Command(BaseCommand):
    help = "Export a project's codebook as JSON or CSV."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Slug of the project.")
        parser.add_argument("--format", choices=["json", "csv"], default="json", help="json (default) or csv.")
        parser.add_argument("-o", "--output", help="File to write (default: standard output).")

    def handle(self, *args, **options) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"There is no project with slug {options['project']!r}.")
        nodes = Node.objects.for_project(project)
        if options["format"] == "csv":
            text, encoding = codebook_io.export_csv(nodes), "utf-8-sig"  # the BOM lets Excel read Chinese
        else:
            text, encoding = codebook_io.export_json(nodes), "utf-8"
        if not options["output"] or options["output"] == "-":
            self.stdout.write(text, ending="")
            return
        Path(options["output"]).write_bytes(text.encode(encoding))
        self.stderr.write(f"Wrote {nodes.count()} node(s) of {project.slug} to {options['output']}.")
