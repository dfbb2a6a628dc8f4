"""Write a project's full reference list to CSV or XLSX (by the file's suffix)."""

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from coding import exports, stats
from coding.models import Project, Reference


class Command(BaseCommand):
    help = (
        "Export every reference of a project (label, policy number and title, clause, node path, "
        "coder or consensus, offsets, text, memo, created) as CSV or XLSX."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument(
            "--layer", help="A coder's username, 'coders' (every coder) or 'consensus'; every layer when left out."
        )
        parser.add_argument("-o", "--output", required=True, type=Path, help="The file to write: .csv or .xlsx.")

    def handle(self, *args, project: str, layer: str | None, output: Path, **options) -> None:
        found = Project.objects.filter(slug=project).first()
        if found is None:
            raise CommandError(f"No project with slug {project!r}.")
        if output.suffix.lower() not in (".csv", ".xlsx"):
            raise CommandError(f"{output.name}: the output file must end in .csv or .xlsx.")
        references = Reference.objects.filter(policy__project=found)
        if layer == stats.CONSENSUS:
            references = references.filter(consensus=True)
        elif layer == stats.ALL_CODERS:
            references = references.filter(consensus=False)
        elif layer:
            try:
                coder_id = int(stats.layers_by_name(found, [layer]).keys[0])
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from None
            references = references.filter(consensus=False, coder_id=coder_id)
        count = exports.write_references(exports.reference_rows(references, stats.codebook(found)), output)
        self.stdout.write(f"{count} reference(s) of {found.slug} written to {output}.")
