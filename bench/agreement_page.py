"""Benchmark: server time of the agreement page, its drill-down and a download at study scale.

Run from the repository root:

    .venv/bin/python bench/agreement_page.py [--policies 1000] [--clauses 40] [--coders 2]

Builds a synthetic study in a fresh database (SQLite file under /tmp unless DATABASE_URL is
set; a PostgreSQL DATABASE_URL must name a database this script may fill): the demo codebook
shape (3 tree nodes x 5 sub-nodes), ``--policies`` policies of ``--clauses`` clauses each,
every coder coding about 1.3 nodes per clause with seeded, realistic disagreement (about one
decision in ten differs), every policy marked done. Rows are bulk-inserted (a benchmark needs
no audit trail). Then times, through Django's test client (full request: URL routing,
access check, queries, numpy, template), the page for each unit and level, the drill-down of
one node and a CSV download, REPEATS times each, and prints best and median wall-clock times
with the number of queries of one request.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "policycoder.settings")
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
SQLITE = Path("/tmp/policycoder-agreement-bench.sqlite3")
if not os.environ.get("DATABASE_URL"):
    SQLITE.unlink(missing_ok=True)
    os.environ["DATABASE_URL"] = f"sqlite:///{SQLITE}"

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, override_settings  # noqa: E402

from coding.models import Clause, DoneMark, Membership, Node, Policy, Project, Reference, Role  # noqa: E402

REPEATS = 5
SENTENCE = "市人民政府应当加强智慧城市建设的统筹规划，推进数据共享与开放，支持技术创新和人才培养。"


def build(n_policies: int, n_clauses: int, n_coders: int, seed: int = 20240601) -> Project:
    rng = random.Random(seed)
    User = get_user_model()
    with transaction.atomic():
        project = Project.objects.create(slug="bench", name="Bench")
        supervisor = User.objects.create(username="supervisor")
        coders = [User.objects.create(username=f"coder{i + 1}") for i in range(n_coders)]
        Membership.objects.create(project=project, user=supervisor, role=Role.SUPERVISOR)
        for coder in coders:
            Membership.objects.create(project=project, user=coder, role=Role.CODER)
        leaves = []
        for r in range(3):
            root = Node.objects.create(project=project, name=f"Tree {r + 1}", position=r)
            leaves += [Node.objects.create(project=project, parent=root, name=f"Sub {r + 1}.{s + 1}") for s in range(5)]
        text = "".join(f"第{n}条　{SENTENCE}\n" for n in range(1, n_clauses + 1))
        policies = Policy.objects.bulk_create(
            Policy(project=project, number=n, title=f"Policy {n}", text=text) for n in range(1, n_policies + 1)
        )
        clause_length = len(f"第1条　{SENTENCE}")
        starts = [text.index(f"第{n}条") for n in range(1, n_clauses + 1)]
        clauses = Clause.objects.bulk_create(
            Clause(policy=p, number=n + 1, start=s, end=s + len(f"第{n + 1}条　{SENTENCE}"))
            for p in policies
            for n, s in enumerate(starts)
        )
        references = []
        weights = [rng.random() ** 2 for _ in leaves]
        for clause in clauses:
            truth = set(rng.choices(range(len(leaves)), weights=weights, k=rng.choice((0, 1, 1, 1, 2))))
            for coder in coders:
                coded = {k for k in truth if rng.random() > 0.08}
                if rng.random() < 0.06:
                    coded.add(rng.randrange(len(leaves)))
                for k in coded:
                    start = clause.start + (0 if rng.random() < 0.7 else rng.randrange(clause_length // 2))
                    references.append(
                        Reference(
                            policy_id=clause.policy_id,
                            clause=clause,
                            node=leaves[k],
                            coder=coder,
                            created_by=coder,
                            start=start,
                            end=clause.end,
                            text=text[start - clause.start + starts[clause.number - 1] : clause.end],
                        )
                    )
        Reference.objects.bulk_create(references, batch_size=5000)
        DoneMark.objects.bulk_create(DoneMark(policy=p, coder=c) for p in policies for c in coders)
    print(
        f"Study: {n_policies} policies x {n_clauses} clauses = {len(clauses)} clauses, {n_coders} coders, "
        f"{len(leaves) + 3} nodes, {len(references)} references ({connection.vendor})."
    )
    return project


def timed(client: Client, url: str) -> tuple[list[float], int]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code, response.content[:500])
    queries = len(ctx)
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - start)
        assert response.status_code == 200
    return times, queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=1000)
    parser.add_argument("--clauses", type=int, default=40)
    parser.add_argument("--coders", type=int, default=2)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    project = build(args.policies, args.clauses, args.coders)
    print(f"(built in {time.perf_counter() - started:.1f} s)")
    coders = ",".join(f"coder{i + 1}" for i in range(args.coders))
    node = Node.objects.get(project=project, name="Sub 1.1").pk
    base = "/projects/bench/agreement/"
    cases = [
        ("page, clause unit, sub-nodes", f"{base}?coders={coders}&unit=clause&level=sub"),
        ("page, clause unit, both levels", f"{base}?coders={coders}&unit=clause&level=both"),
        ("page, character unit, sub-nodes", f"{base}?coders={coders}&unit=character&level=sub"),
        ("page, character unit, both levels", f"{base}?coders={coders}&unit=character&level=both"),
        ("drill-down of one node (clause)", f"{base}disagreements/?coders={coders}&at=sub&node={node}"),
        (
            "drill-down of one node (character)",
            f"{base}disagreements/?coders={coders}&unit=character&at=sub&node={node}",
        ),
        ("CSV download, per-policy table", f"{base}export/policies.csv?coders={coders}&level=both"),
    ]
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STORAGES=storages):
        client = Client()
        client.force_login(get_user_model().objects.get(username="supervisor"))
        print(f"{'request':<38} {'best':>8} {'median':>8} {'queries':>8}")
        for name, url in cases:
            times, queries = timed(client, url)
            print(f"{name:<38} {min(times):7.3f}s {statistics.median(times):7.3f}s {queries:>8}")


if __name__ == "__main__":
    main()
