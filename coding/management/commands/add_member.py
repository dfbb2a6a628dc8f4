"""Give an existing user a role in a project (adds them, or changes their role)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from coding import services
from coding.models import Project, Role


class Command(BaseCommand):
    help = "Add an existing user to a project with a role (admin, supervisor, coder), or change their role."

    def add_arguments(self, parser) -> None:
        parser.add_argument("user", help="Username of an existing user.")
        parser.add_argument("role", choices=Role.values, help="admin, supervisor or coder.")
        parser.add_argument("--project", required=True, help="Slug of the project.")

    def handle(self, *args, **options) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"There is no project with slug {options['project']!r}.")
        try:
            membership, outcome = services.add_member(
                actor=None, project=project, username=options["user"], role=options["role"]
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        username = membership.user.get_username()
        messages = {
            "added": f"Added {username} to {project.slug} as {membership.role}.",
            "changed": f"{username} is now {membership.role} in {project.slug}.",
            "unchanged": f"{username} already is {membership.role} in {project.slug}; nothing changed.",
        }
        self.stdout.write(messages[outcome])
