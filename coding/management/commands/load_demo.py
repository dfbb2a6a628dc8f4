"""Load the demo study: project `smart-city`, the study's codebook, 17 real policies, demo users.

Idempotent: running it again changes nothing that is already there (it neither duplicates
policies nor resets users' passwords unless --reset-passwords is given).
"""

import json
import random
import re
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from coding import services
from coding.models import Clause, Node, Policy, Project, Reference, Role

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
        self.stdout.write(demo_coding(project, users["coder1"][0], users["coder2"][0]))
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


# --- demo coding: so that the agreement page shows real figures after `make run` -----------------
# Clearly labelled demo data: every reference carries DEMO_MEMO. Coder 1 codes by keyword rules;
# coder 2 follows the same rules with deliberate, seeded differences (a node missed, a sibling
# node chosen instead, the whole clause instead of the sentence), so agreement is high but not
# perfect. Nothing here states a figure: the page computes them from these references.
DEMO_MEMO = "demo coding"
DEMO_DONE_BY_BOTH = (2, 4, 5, 6)  # coded and marked done by coder1 and coder2 (108 clauses)
DEMO_DONE_BY_CODER1_ONLY = 8  # coded and marked done by coder1 only: left out of agreement
DEMO_KEYWORDS = {
    ("Supply-based", "Talent"): ["人才", "培训", "专家", "培养"],
    ("Supply-based", "Information Support"): ["数据共享", "信息共享", "共享", "开放", "数据资源"],
    ("Supply-based", "Infrastructure"): ["基础设施", "网络", "5G", "数据中心", "云平台", "物联网"],
    ("Supply-based", "Technical Support"): ["技术", "研发", "创新"],
    ("Environmental-based", "Target Planning"): ["规划", "目标", "发展战略"],
    ("Environmental-based", "Financial Support"): ["资金", "财政", "补贴", "投资", "融资"],
    ("Environmental-based", "Tax incentives"): ["税"],
    ("Environmental-based", "Regulatory Control"): ["监督", "法律责任", "处罚", "违反", "安全"],
    ("Demand-based", "Government Procurement"): ["采购"],
    ("Demand-based", "Service Outsourcing"): ["购买服务", "外包", "社会力量"],
    ("Demand-based", "Demonstration Project"): ["示范", "试点"],
    ("Demand-based", "Smart Application"): ["智慧交通", "智慧医疗", "政务服务", "一网通办", "应用场景"],
}
_SENTENCE_END = re.compile(r"[。；;！？!?\n]")


def _sentence_around(text: str, at: int) -> tuple[int, int]:
    """[start, end) of the sentence of ``text`` containing position ``at``."""
    start = 0
    for match in _SENTENCE_END.finditer(text, 0, at):
        start = match.end()
    match = _SENTENCE_END.search(text, at)
    end = match.end() if match else len(text)
    while start < end and text[start].isspace():
        start += 1
    return start, max(end, start + 1)


def _keyword_codes(text: str, nodes: dict) -> list[tuple]:
    """(node, start, end) of the first two nodes whose keywords occur, in text order."""
    hits = []
    for key, words in DEMO_KEYWORDS.items():
        found = [text.find(word) for word in words if word in text]
        if found and key in nodes:
            at = min(found)
            hits.append((at, key, *_sentence_around(text, at)))
    hits.sort()
    return [(nodes[key], start, end) for _, key, start, end in hits[:2]]


def _second_coder(codes: list[tuple], siblings: dict, text_length: int, rng: random.Random) -> list[tuple]:
    coded = []
    for node, start, end in codes:
        roll = rng.random()
        if roll < 0.12:
            continue  # missed
        if roll < 0.22:
            node = rng.choice(siblings[node.parent_id])  # confused with a sibling node
        if rng.random() < 0.3:
            start, end = 0, text_length  # the whole clause rather than the sentence
        coded.append((node, start, end))
    return coded


def demo_coding(project: Project, coder1, coder2) -> str:
    """Code the demo policies for coder1 and coder2 (once) and mark them done."""
    if Reference.objects.filter(policy__project=project, memo=DEMO_MEMO).exists():
        return "Demo coding (memo 'demo coding') is already there."
    nodes = {}
    siblings: dict[int | None, list[Node]] = {}
    by_id = {node.pk: node for node in Node.objects.filter(project=project)}
    for node in by_id.values():
        if node.parent_id is not None:
            nodes[(by_id[node.parent_id].name, node.name)] = node
            siblings.setdefault(node.parent_id, []).append(node)
    numbers = [*DEMO_DONE_BY_BOTH, DEMO_DONE_BY_CODER1_ONLY]
    done_by_both = set(DEMO_DONE_BY_BOTH)
    policies = Policy.objects.filter(project=project, number__in=numbers).order_by("number")
    count = 0
    for policy in policies:
        for clause in Clause.objects.filter(policy=policy).order_by("start"):
            clause.policy = policy
            text = clause.text_of(policy)
            codes = _keyword_codes(text, nodes)
            rng = random.Random(f"demo-{policy.number}-{clause.number}")  # noqa: S311 -- demo data, not security
            layers = [(coder1, codes)]
            if policy.number in done_by_both:
                layers.append((coder2, _second_coder(codes, siblings, len(text), rng)))
            for coder, coded in layers:
                for node, start, end in coded:
                    services.add_reference(
                        actor=coder,
                        clause=clause,
                        node=node,
                        start=clause.start + start,
                        end=clause.start + end,
                        coder=coder,
                        memo=DEMO_MEMO,
                    )
                    count += 1
        services.mark_policy_done(actor=coder1, policy=policy, coder=coder1)
        if policy.number in done_by_both:
            services.mark_policy_done(actor=coder2, policy=policy, coder=coder2)
    both = ", ".join(map(str, DEMO_DONE_BY_BOTH))
    return (
        f"Demo coding (demo data only, memo '{DEMO_MEMO}'): coder1 and coder2 coded policies {both} by "
        f"keyword rules and marked them done; coder1 also coded policy {DEMO_DONE_BY_CODER1_ONLY} "
        f"({count} references). See the Agreement page."
    )
