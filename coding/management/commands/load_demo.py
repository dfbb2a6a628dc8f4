"""Load the demo study: project `smart-city`, the study's codebook, 17 real policies, demo users.

Idempotent: running it again changes nothing that is already there (it neither duplicates
policies nor resets users' passwords unless --reset-passwords is given).
"""

import json
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from coding import services
from coding.models import Node, Policy, Project, Role

FIXTURES = Path(settings.BASE_DIR) / "fixtures"
SLUG = "smart-city"
# Demo accounts for a local demo only; the passwords are printed by `make run`.
DEMO_USERS = [
    ("admin", Role.ADMIN, "admin-demo"),
    ("supervisor", Role.SUPERVISOR, "supervisor-demo"),
    ("coder1", Role.CODER, "coder1-demo"),
    ("coder2", Role.CODER, "coder2-demo"),
]


class Command(BaseCommand):
    help = "Load the demo study (project smart-city) with its codebook, 17 real policies and demo users."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--reset-passwords", action="store_true", help="Set the demo users' passwords again.")

    @transaction.atomic
    def handle(self, *args, reset_passwords: bool = False, **options) -> None:
        User = get_user_model()
        users = {}
        for username, role, password in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username)
            if created or reset_passwords:
                user.set_password(password)
                user.save()
            users[username] = (user, role, password)
        actor = users["admin"][0]

        project = Project.objects.filter(slug=SLUG).first()
        if project is None:
            project = services.create_project(
                actor=actor,
                slug=SLUG,
                name="Smart-city policy tools (demo)",
                description=(
                    "Demo study after 'Smart city policies in China's first-tier cities': supply-, "
                    "environmental- and demand-based policy tools, coded clause by clause. "
                    "17 real Chinese policy texts; see fixtures/README.md for provenance."
                ),
            )
        for user, role, _ in users.values():
            services.set_membership(actor=actor, project=project, user=user, role=role)

        if not Node.objects.filter(project=project).exists():
            codebook = json.loads((FIXTURES / "demo_codebook.json").read_text(encoding="utf-8"))
            self._add_nodes(actor, project, codebook, parent=None)

        existing = set(Policy.objects.filter(project=project).values_list("number", flat=True))
        created = 0
        for entry in json.loads((FIXTURES / "demo_policies.json").read_text(encoding="utf-8")):
            if entry["number"] in existing:
                continue
            text = (FIXTURES / entry["file"]).read_text(encoding="utf-8")
            services.create_policy(
                actor=actor,
                project=project,
                number=entry["number"],
                title=entry["title"],
                text=text,
                rule="article",
                potency_level=entry.get("potency_level") or "",
                release_departments=entry.get("release_departments") or [],
                jurisdiction=entry.get("jurisdiction") or "",
                release_date=entry.get("release_date") or "",
                implementation_date=entry.get("implementation_date") or "",
                source_url=entry.get("source_url") or "",
                language=entry.get("language") or "zh",
                attributes=(entry.get("attributes") or {})
                | ({"title_en": entry["title_en"]} if entry.get("title_en") else {}),
            )
            created += 1

        self.stdout.write(f"Demo project '{SLUG}': {created} policies added, {len(existing)} already there.")
        self.stdout.write("Demo users (local demo only):")
        for username, (_, role, password) in users.items():
            self.stdout.write(f"  {username:<11} {role:<11} password: {password}")

    def _add_nodes(self, actor, project, entries, parent) -> None:
        for position, entry in enumerate(entries, start=1):
            node = services.add_node(
                actor=actor,
                project=project,
                parent=parent,
                name=entry["name"],
                description=entry.get("description") or "",
                colour=entry.get("colour") or "#ffe08a",
                shortcut=entry.get("shortcut") or "",
                position=position,
            )
            self._add_nodes(actor, project, entry.get("children") or [], parent=node)
