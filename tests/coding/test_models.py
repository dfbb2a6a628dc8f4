"""The database itself enforces the invariants, whatever code writes to it."""

import pytest
from django.db import IntegrityError, transaction

from coding.models import Clause, Node, Policy, Reference
from tests.factories import ClauseFactory, NodeFactory, PolicyFactory, ProjectFactory, ReferenceFactory, UserFactory

pytestmark = pytest.mark.django_db


def raises_integrity(fn):
    with pytest.raises(IntegrityError), transaction.atomic():
        fn()


def test_policy_number_unique_in_project_but_not_across_projects():
    policy = PolicyFactory(number=7)
    PolicyFactory(number=7)  # another project
    raises_integrity(lambda: PolicyFactory(project=policy.project, number=7))


def test_policy_number_starts_at_one():
    raises_integrity(lambda: PolicyFactory(number=0))


def test_clause_number_unique_in_policy():
    clause = ClauseFactory(number=1, start=0, end=3)
    raises_integrity(lambda: ClauseFactory(policy=clause.policy, number=1, start=4, end=6))


@pytest.mark.parametrize(("start", "end"), [(5, 5), (6, 5)])
def test_clause_span_must_be_a_passage(start, end):
    raises_integrity(lambda: ClauseFactory(start=start, end=end))


def test_clause_cannot_end_past_its_policy_text_in_code_points():
    policy = PolicyFactory(text="𠀀𠀀ab")  # 4 code points, 6 UTF-16 units
    ClauseFactory(policy=policy, start=0, end=4)
    raises_integrity(lambda: ClauseFactory(policy=policy, number=2, start=0, end=5))


def test_policy_text_cannot_shrink_below_its_clauses():
    clause = ClauseFactory(start=0, end=10)
    policy = clause.policy
    policy.text = "short"
    raises_integrity(lambda: policy.save())


def test_reference_must_lie_inside_its_clause():
    clause = ClauseFactory(start=2, end=8)
    ReferenceFactory(clause=clause, start=2, end=8)
    raises_integrity(lambda: ReferenceFactory(clause=clause, start=1, end=5))
    raises_integrity(lambda: ReferenceFactory(clause=clause, start=5, end=9))


def test_reference_clause_must_belong_to_its_policy():
    clause = ClauseFactory(start=0, end=5)
    other_policy = PolicyFactory(project=clause.policy.project)
    raises_integrity(lambda: ReferenceFactory(clause=clause, policy=other_policy))


def test_reference_node_must_belong_to_the_policy_project():
    clause = ClauseFactory(start=0, end=5)
    foreign_node = NodeFactory(project=ProjectFactory())
    raises_integrity(lambda: ReferenceFactory(clause=clause, node=foreign_node))


def test_reference_update_is_checked_too():
    reference = ReferenceFactory(clause=ClauseFactory(start=0, end=5))
    reference.end = 50
    raises_integrity(lambda: reference.save())


def test_reference_layer_is_a_coder_or_the_consensus():
    clause = ClauseFactory(start=0, end=5)
    raises_integrity(lambda: ReferenceFactory(clause=clause, coder=None, consensus=False, created_by=UserFactory()))
    raises_integrity(lambda: ReferenceFactory(clause=clause, consensus=True))


def test_one_reference_per_coder_node_and_span():
    reference = ReferenceFactory(clause=ClauseFactory(start=0, end=5))
    raises_integrity(lambda: ReferenceFactory(clause=reference.clause, node=reference.node, coder=reference.coder))
    # Another coder may code the same passage at the same node.
    ReferenceFactory(clause=reference.clause, node=reference.node)


def test_node_parent_must_be_in_the_same_project():
    parent = NodeFactory()
    raises_integrity(lambda: NodeFactory(parent=parent, project=ProjectFactory()))


def test_node_names_unique_among_siblings():
    root = NodeFactory(name="Supply-based")
    raises_integrity(lambda: NodeFactory(project=root.project, name="Supply-based"))
    NodeFactory(project=root.project, parent=root, name="Others")
    other_root = NodeFactory(project=root.project, name="Demand-based")
    NodeFactory(project=root.project, parent=other_root, name="Others")  # same name, other parent
    raises_integrity(lambda: NodeFactory(project=root.project, parent=root, name="Others"))


def test_partial_dates_keep_their_precision():
    policy = PolicyFactory(release_date="2011", implementation_date="2021.4")
    policy.full_clean()
    assert (policy.release_date, policy.implementation_date) == ("2011", "2021-04")
    policy.save()
    policy.refresh_from_db()
    assert policy.release_year == 2011
    assert Policy.objects.filter(release_date__gte="2011", release_date__lt="2012").count() == 1


def test_querysets_are_scoped():
    clause = ClauseFactory(start=0, end=5)
    reference = ReferenceFactory(clause=clause)
    assert list(Reference.objects.for_policy(clause.policy).by_coder(reference.coder)) == [reference]
    assert list(Node.objects.for_project(clause.policy.project)) == [reference.node]
    assert Clause.objects.get().label_for(clause.policy) == f"{clause.policy.number}-1"


def test_integrity_triggers_are_installed_after_migrations():
    from django.db import connection

    from coding import triggers

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        else:
            cursor.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
        names = {row[0] for row in cursor.fetchall()}
    expected = set()
    for name, (_table, events, _condition, _message) in triggers.CHECKS.items():
        expected |= {f"{name}_{e.split()[0].lower()}" for e in events} if connection.vendor == "sqlite" else {name}
    assert expected <= names
