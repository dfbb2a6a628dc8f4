"""A study coded so that its counts follow the paper's Table 3, for the dashboard tests.

The paper gives some counts (supply 53 of which financial investment 14, environmental 52 with
regulations 19, demand 60 with smart applications 42) and percentages for the rest; the other
counts are the nearest whole numbers that add up to each tree node's total (the paper's own
supply-based shares sum to 101.8 %, so no set of counts reproduces all of them).
"""

from coding import services
from coding.models import Clause, Policy, Reference
from coding.segmentation import segment

TABLE3 = {
    "Supply-based": [
        ("Infrastructure", 12),
        ("Talent input", 13),
        ("Information Support", 5),
        ("Financial investment", 14),
        ("Others", 9),
    ],
    "Environmental-based": [
        ("Encourage innovation", 7),
        ("Regulations", 19),
        ("Target Planning", 13),
        ("Tax Incentive", 6),
        ("Others", 7),
    ],
    "Demand-based": [
        ("Smart Applications", 42),
        ("Service Outsourcing", 3),
        ("Government Procurement", 5),
        ("Others", 10),
    ],
}
POLICY_COUNT = 66
JURISDICTIONS = ["Central", "Beijing", "Shanghai", "Guangzhou", "Shenzhen"]
LEVELS = ["Local Regulations", "Departmental Working Paper", "Normative Document"]
NUMERALS = "一二三四五六七八九十"
TEXT = "".join(f"第{n}条　第{n}条的内容，智慧城市建设与数据共享。\n" for n in NUMERALS)


def policy_fields(number: int) -> dict:
    departments = ["Dept A"] if number % 3 else ["Dept A", "Dept B"]
    if number % 11 == 0:
        departments = []
    return {
        "jurisdiction": JURISDICTIONS[number % len(JURISDICTIONS)],
        "release_date": f"{2010 + number % 12}-0{1 + number % 9}" if number % 13 else "",
        "potency_level": LEVELS[number % len(LEVELS)],
        "release_departments": departments,
        "attributes": {"kind": "plan" if number % 2 else "notice"},
    }


def build_codebook(project, actor) -> dict[str, object]:
    """Tree nodes and sub-nodes of Table 3; returns {path: node}."""
    nodes = {}
    for tree_name, subs in TABLE3.items():
        tree = services.add_node(actor=actor, project=project, name=tree_name)
        nodes[tree_name] = tree
        for sub_name, _ in subs:
            nodes[f"{tree_name} > {sub_name}"] = services.add_node(
                actor=actor, project=project, name=sub_name, parent=tree
            )
    return nodes


def build_policies(project, actor, count: int = POLICY_COUNT) -> list:
    """``count`` policies with TEXT cut into its ten articles, in two bulk inserts (the services
    would write an audit event per policy, which these tests do not need)."""
    spans = segment(TEXT, "article").clauses
    policies = Policy.objects.bulk_create(
        Policy(
            project=project, number=n, title=f"Policy {n}", text=TEXT, segmentation_rule="article", **policy_fields(n)
        )
        for n in range(1, count + 1)
    )
    Clause.objects.bulk_create(
        Clause(policy=policy, number=span.number, start=span.start, end=span.end)
        for policy in policies
        for span in spans
    )
    return policies


def assignments() -> list[tuple[str, int, int]]:
    """(node path, policy number, clause number) of every reference, in a fixed spread:
    reference k lies in policy 7k mod 66 + 1, clause k // 66 + 1, so no two share a clause."""
    result = []
    k = 0
    for tree_name, subs in TABLE3.items():
        for sub_name, count in subs:
            for _ in range(count):
                result.append((f"{tree_name} > {sub_name}", (7 * k) % POLICY_COUNT + 1, k // POLICY_COUNT + 1))
                k += 1
    return result


def code_table3(project, actor, coder, nodes, *, consensus: bool = False, only: int | None = None) -> list:
    """Bulk-create the Table 3 references in ``coder``'s layer (or the consensus layer), the
    first ``only`` of them when given. Bulk, not through services: the tally triggers must
    count rows written any way."""
    clauses = {
        (c.policy.number, c.number): c for c in Clause.objects.filter(policy__project=project).select_related("policy")
    }
    references = []
    for path, number, clause_number in assignments()[:only]:
        clause = clauses[(number, clause_number)]
        references.append(
            Reference(
                policy=clause.policy,
                clause=clause,
                node=nodes[path],
                coder=None if consensus else coder,
                consensus=consensus,
                created_by=actor,
                start=clause.start,
                end=clause.end,
                text=clause.policy.text[clause.start : clause.end],
            )
        )
    return Reference.objects.bulk_create(references)
