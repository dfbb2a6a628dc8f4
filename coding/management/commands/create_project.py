from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from coding import services
from coding.models import Role


class Command(BaseCommand):
    help = "Create a project (a study) and optionally make a user its admin."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("name")
        parser.add_argument("--description", default="")
        parser.add_argument("--admin", help="Username of the project's first admin.")
        parser.add_argument("--no-blind", action="store_true", help="Let coders see each other's references.")

    def handle(self, *args, slug: str, name: str, description: str, admin: str | None, no_blind: bool, **options):
        user = None
        if admin:
            user = get_user_model().objects.filter(username=admin).first()
            if user is None:
                raise CommandError(f"No user named {admin!r}.")
        try:
            with transaction.atomic():
                project = services.create_project(
                    actor=user, slug=slug, name=name, description=description, blind_coding=not no_blind
                )
                if user:
                    services.set_membership(actor=user, project=project, user=user, role=Role.ADMIN)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"Created project {project.slug!r}" + (f" with admin {admin}." if admin else "."))
