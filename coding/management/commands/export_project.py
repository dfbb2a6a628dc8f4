"""Export a project as REFI-QDA: a .qdpx (project.qde and its sources) or a .qdc (the codebook)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from coding import refi
from coding.models import Project


class Command(BaseCommand):
    help = "Export a project as a REFI-QDA .qdpx project or a .qdc codebook, for NVivo, ATLAS.ti, MAXQDA…"

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument("--format", choices=["qdpx", "qdc"], default="qdpx")
        parser.add_argument("-o", "--output", required=True, help="The file to write.")
        parser.add_argument(
            "--nvivo",
            action="store_true",
            help="Count positions in UTF-16 code units, as NVivo does (matters only past U+FFFF, e.g. 𠀀).",
        )

    def handle(self, *args, project: str, format: str, output: str, nvivo: bool, **options) -> None:
        found = Project.objects.filter(slug=project).first()
        if found is None:
            raise CommandError(f"There is no project {project!r}.")
        if nvivo and format != "qdpx":
            raise CommandError("--nvivo applies to .qdpx exports (a codebook has no positions).")
        path = Path(output)
        try:
            with path.open("wb") as out:
                if format == "qdc":
                    refi.export_codebook(found, out)
                else:
                    refi.export_project(found, out, utf16_positions=nvivo)
        except refi.RefiError as exc:
            path.unlink(missing_ok=True)
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"Cannot write {path}: {exc.strerror}.") from None
        self.stdout.write(f"Wrote {path} ({path.stat().st_size} bytes).")
