"""Import a REFI-QDA file (.qdpx, .qde or .qdc) into a new or an existing project."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from coding import refi, services
from coding.models import Project
from coding.segmentation import RULES


class Command(BaseCommand):
    help = (
        "Import a REFI-QDA project (.qdpx, or a bare .qde) or codebook (.qdc) from NVivo, ATLAS.ti, MAXQDA, "
        "QualCoder or PolicyCoder. Without --project a new project is made from the file."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file")
        parser.add_argument("--project", default="", help="Slug of the project to import into (made if missing).")
        parser.add_argument(
            "--rule",
            choices=RULES,
            default=None,
            help="Segmentation rule for the sources' texts (default: the file's, else article, falling back "
            "to paragraphs).",
        )
        parser.add_argument("--as", dest="actor", default="", help="Username recorded as the importer.")

    def handle(self, *args, file: str, project: str, rule: str | None, actor: str, **options) -> None:
        user = None
        if actor:
            user = get_user_model().objects.filter(username=actor).first()
            if user is None:
                raise CommandError(f"There is no user {actor!r}.")
        target = Project.objects.filter(slug=project).first() if project else None
        path = Path(file)
        try:
            parsed = refi.read_path(path)
            _, report = services.import_refi(
                actor=user,
                parsed=parsed,
                project=target,
                slug=project,
                rule=rule,
                file_name=path.name,
            )
        except refi.RefiError as exc:
            raise CommandError(f"{path.name}: {exc} Nothing was imported.") from None
        except ValidationError as exc:
            raise CommandError(f"{path.name}: {' '.join(exc.messages)} Nothing was imported.") from None
        for line in report.lines():
            self.stdout.write(line)
