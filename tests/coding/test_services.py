"""Every service writes exactly one audit Event per change, in the same transaction, and
refuses bad input with a message that names what is wrong, changing nothing."""

import pytest
from django.core.exceptions import ValidationError

from coding import access, services
from coding.models import Clause, DoneMark, Event, Node, Policy, Reference, Role
from tests.conftest import SAMPLE_TEXT
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def events():
    """Events written during the test body, counted from the moment of the call."""

    class Counter:
        def __init__(self):
            self.mark = Event.objects.count()

        def new(self):
            rows = list(Event.objects.order_by("id")[self.mark :])
            self.mark += len(rows)
            return rows

    return Counter()


def actions(rows):
    return [e.action for e in rows]


def clause_for(policy, number):
    return Clause.objects.get(policy=policy, number=number)


def test_create_policy_segments_stores_and_audits_once(project, admin_user, events):
    policy = services.create_policy(
        actor=admin_user,
        project=project,
        title="T",
        text=SAMPLE_TEXT,
        release_date="2017.1",
        release_departments="A; B",
    )
    assert policy.number == 1
    assert policy.release_date == "2017-01"
    assert policy.release_departments == ["A", "B"]
    assert policy.segmentation_rule == "article"
    assert list(policy.clauses.order_by("number").values_list("number", flat=True)) == [0, 1, 2, 3]
    rows = events.new()
    assert actions(rows) == ["policy.create"]
    assert rows[0].actor == admin_user and rows[0].project == project
    assert rows[0].after["clauses"] == 4


def test_create_policy_refuses_a_taken_number_and_a_bad_date_writing_nothing(project, admin_user, policy, events):
    with pytest.raises(ValidationError, match="number 1 already exists"):
        services.create_policy(actor=admin_user, project=project, number=1, title="Again", text=SAMPLE_TEXT)
    with pytest.raises(ValidationError, match=r"2021\.13\.45"):
        services.create_policy(actor=admin_user, project=project, title="Bad", text="x", release_date="2021.13.45")
    assert Policy.objects.count() == 1
    assert events.new() == []


def test_catalogue_entry_without_text_then_attach_text(project, admin_user, events):
    policy = services.create_policy(actor=admin_user, project=project, title="Catalogue only")
    assert policy.clauses.count() == 0 and not policy.has_text
    services.set_policy_text(actor=admin_user, policy=policy, text=SAMPLE_TEXT)
    assert policy.clauses.count() == 4
    assert actions(events.new()) == ["policy.create", "policy.set_text"]


def test_update_policy_audits_before_and_after(policy, admin_user, events):
    services.update_policy(actor=admin_user, policy=policy, jurisdiction="Jining", implementation_date="2017-05-01")
    (row,) = events.new()
    assert row.action == "policy.update"
    assert row.before["jurisdiction"] == "" and row.after["jurisdiction"] == "Jining"


def test_resegment_refused_once_coded(policy, node, coder_a, admin_user, events):
    assert services.resegment_policy(actor=admin_user, policy=policy, rule="sentence")[0] > 4
    services.resegment_policy(actor=admin_user, policy=policy, rule="article")
    clause = clause_for(policy, 1)
    services.add_reference(actor=coder_a, clause=clause, node=node, coder=coder_a, start=clause.start, end=clause.end)
    events.new()
    with pytest.raises(ValidationError, match="already has 1 reference"):
        services.resegment_policy(actor=admin_user, policy=policy, rule="paragraph")
    assert policy.clauses.count() == 4
    assert events.new() == []


def test_unknown_rule_is_refused(policy, admin_user):
    with pytest.raises(ValidationError, match="'lines' is not a segmentation rule"):
        services.resegment_policy(actor=admin_user, policy=policy, rule="lines")


def test_update_clause_checks_bounds(policy, admin_user, events):
    clause = clause_for(policy, 1)
    with pytest.raises(ValidationError, match="overlap"):
        services.update_clause(actor=admin_user, clause=clause, start=clause.start, end=clause_for(policy, 2).end)
    with pytest.raises(ValidationError, match="must satisfy"):
        services.update_clause(actor=admin_user, clause=clause, start=0, end=len(policy.text) + 1)
    services.update_clause(actor=admin_user, clause=clause, start=clause.start, end=clause.end - 1)
    assert actions(events.new()) == ["clause.update"]


def test_add_reference_snapshots_text_and_audits(policy, node, coder_a, events):
    clause = clause_for(policy, 3)
    start = policy.text.index("𠀀")
    reference = services.add_reference(
        actor=coder_a, clause=clause, node=node, coder=coder_a, start=start, end=start + 5
    )
    assert reference.text == "𠀀支持数据"  # five code points, six UTF-16 units
    assert reference.created_by == coder_a and reference.version == 1
    (row,) = events.new()
    assert row.action == "reference.create" and row.target_label == "1-3"
    # A retried request returns the same reference instead of a duplicate, and audits nothing.
    again = services.add_reference(actor=coder_a, clause=clause, node=node, coder=coder_a, start=start, end=start + 5)
    assert again.pk == reference.pk
    assert events.new() == []


def test_add_reference_refuses_offsets_outside_the_clause(policy, node, coder_a, events):
    clause = clause_for(policy, 1)
    with pytest.raises(ValidationError, match=r"outside clause 1-1"):
        services.add_reference(
            actor=coder_a, clause=clause, node=node, coder=coder_a, start=clause.start, end=clause.end + 1
        )
    with pytest.raises(ValidationError, match="start must be before end"):
        services.add_reference(actor=coder_a, clause=clause, node=node, coder=coder_a, start=5, end=5)
    assert Reference.objects.count() == 0 and events.new() == []


def test_add_reference_refuses_a_node_of_another_project(policy, coder_a, events):
    foreign = services.add_node(actor=None, project=ProjectFactory(), name="Elsewhere")
    events.new()
    clause = clause_for(policy, 1)
    with pytest.raises(ValidationError, match="another project"):
        services.add_reference(
            actor=coder_a, clause=clause, node=foreign, coder=coder_a, start=clause.start, end=clause.end
        )
    assert events.new() == []


def test_add_reference_refuses_a_non_member_coder(policy, node):
    stranger = UserFactory(username="stranger")
    clause = clause_for(policy, 1)
    with pytest.raises(ValidationError, match="not a member"):
        services.add_reference(
            actor=stranger, clause=clause, node=node, coder=stranger, start=clause.start, end=clause.end
        )


def test_a_membership_read_by_the_access_layer_vouches_only_for_its_own_project(policy, project, node, coder_a):
    other = ProjectFactory(slug="other")
    services.set_membership(actor=None, project=other, user=coder_a, role=Role.CODER)
    access.get_project_for_user(coder_a, "other")  # read in this request: coder_a codes in "other"
    services.remove_membership(actor=None, membership=project.memberships.get(user=coder_a))
    clause = clause_for(policy, 1)

    with pytest.raises(ValidationError, match="not a member"):
        services.add_reference(
            actor=coder_a, clause=clause, node=node, coder=coder_a, start=clause.start, end=clause.end
        )
    assert not Reference.objects.exists()


def test_selection_across_clauses_becomes_one_reference_per_clause(policy, node, coder_a, events):
    first, second = clause_for(policy, 1), clause_for(policy, 2)
    refs = services.add_references_for_selection(
        actor=coder_a, policy=policy, node=node, coder=coder_a, start=first.start + 3, end=second.start + 4
    )
    assert [(r.clause_id, r.start, r.end) for r in refs] == [
        (first.id, first.start + 3, first.end),
        (second.id, second.start, second.start + 4),
    ]
    assert actions(events.new()) == ["reference.create", "reference.create"]


def test_selection_in_a_heading_only_is_refused(policy, node, coder_a):
    heading = policy.text.index("第一章")
    with pytest.raises(ValidationError, match="outside every clause"):
        services.add_references_for_selection(
            actor=coder_a, policy=policy, node=node, coder=coder_a, start=heading, end=heading + 3
        )


def test_update_reference_with_stale_version_is_a_conflict(policy, node, coder_a, events):
    clause = clause_for(policy, 1)
    ref = services.add_reference(
        actor=coder_a, clause=clause, node=node, coder=coder_a, start=clause.start, end=clause.end
    )
    events.new()
    updated = services.update_reference(actor=coder_a, reference=ref, version=1, memo="first")
    assert updated.version == 2
    with pytest.raises(services.StaleReference) as info:
        services.update_reference(actor=coder_a, reference=ref, version=1, memo="overwrite?")
    assert info.value.current.memo == "first"
    (row,) = events.new()
    assert row.action == "reference.update" and row.before["memo"] == "" and row.after["memo"] == "first"
    assert row.target_label == f"{policy.number}-1"  # labelled like the creation, not "reference 5 …"


def test_delete_reference_audits_once_and_is_idempotent(policy, node, coder_a, events):
    clause = clause_for(policy, 1)
    ref = services.add_reference(
        actor=coder_a, clause=clause, node=node, coder=coder_a, start=clause.start, end=clause.end
    )
    events.new()
    services.delete_reference(actor=coder_a, reference=ref, version=1)
    services.delete_reference(actor=coder_a, reference=ref)
    (row,) = events.new()
    assert (row.action, row.target_label) == ("reference.delete", f"{policy.number}-1")
    assert Reference.objects.count() == 0


def test_consensus_reference_belongs_to_no_coder(policy, node, supervisor, events):
    clause = clause_for(policy, 2)
    ref = services.add_reference(
        actor=supervisor, clause=clause, node=node, consensus=True, start=clause.start, end=clause.end
    )
    assert ref.consensus and ref.coder is None and ref.created_by == supervisor
    assert actions(events.new()) == ["reference.create"]


def test_node_tree_services_audit_each_change(project, admin_user, events):
    supply = services.add_node(actor=admin_user, project=project, name="Supply-based", shortcut="s")
    talent = services.add_node(actor=admin_user, project=project, name="Talent", parent=supply)
    demand = services.add_node(actor=admin_user, project=project, name="Demand-based")
    services.update_node(actor=admin_user, node=talent, name="Talent input")
    services.update_node(actor=admin_user, node=talent, parent=demand)
    assert actions(events.new()) == ["node.create"] * 3 + ["node.update"] * 2
    with pytest.raises(ValidationError, match="its own descendant"):
        services.update_node(actor=admin_user, node=demand, parent=talent)
    with pytest.raises(ValidationError, match="already exists at the top level"):
        services.add_node(actor=admin_user, project=project, name="Supply-based")
    with pytest.raises(ValidationError, match="Shortcut 's' is already used"):
        services.add_node(actor=admin_user, project=project, name="Environmental-based", shortcut="s")
    assert events.new() == []


def test_merge_nodes_moves_references_and_drops_duplicates(policy, project, admin_user, coder_a, coder_b, events):
    old = services.add_node(actor=admin_user, project=project, name="Financial investment")
    new = services.add_node(actor=admin_user, project=project, name="Financial Support")
    child = services.add_node(actor=admin_user, project=project, name="Subsidies", parent=old)
    clause = clause_for(policy, 1)
    span = {"clause": clause, "start": clause.start, "end": clause.end}
    services.add_reference(actor=coder_a, node=old, coder=coder_a, **span)
    services.add_reference(actor=coder_a, node=new, coder=coder_a, **span)  # duplicate after merge
    kept = services.add_reference(actor=coder_b, node=old, coder=coder_b, **span)
    events.new()
    services.merge_nodes(actor=admin_user, source=old, target=new)
    assert not Node.objects.filter(pk=old.pk).exists()
    assert Reference.objects.filter(node=new).count() == 2
    kept.refresh_from_db()
    assert kept.node == new and kept.version == 2
    child.refresh_from_db()
    assert child.parent == new
    (row,) = events.new()
    assert row.action == "node.merge" and row.after == {"into": new.pk, "references_moved": 1, "duplicates_dropped": 1}


def test_delete_node_refused_while_coded(policy, node, coder_a, admin_user, events):
    clause = clause_for(policy, 1)
    services.add_reference(actor=coder_a, clause=clause, node=node, coder=coder_a, start=clause.start, end=clause.end)
    events.new()
    with pytest.raises(ValidationError, match="has 1 reference"):
        services.delete_node(actor=admin_user, node=node)
    empty = services.add_node(actor=admin_user, project=node.project, name="Unused")
    services.delete_node(actor=admin_user, node=empty)
    assert actions(events.new()) == ["node.create", "node.delete"]


def test_done_marks_audit_each_change_and_ignore_repeats(policy, coder_a, events):
    services.update_policy(actor=None, policy=policy, number=23)  # labels name the number, not the id
    events.new()
    services.mark_policy_done(actor=coder_a, policy=policy, coder=coder_a)
    services.mark_policy_done(actor=coder_a, policy=policy, coder=coder_a)
    services.unmark_policy_done(actor=coder_a, policy=policy, coder=coder_a)
    services.unmark_policy_done(actor=coder_a, policy=policy, coder=coder_a)
    rows = events.new()
    assert actions(rows) == ["policy.done", "policy.undone"]
    assert {row.target_label for row in rows} == {"coder_a done with policy 23"}
    assert DoneMark.objects.count() == 0


def test_done_by_all_counts_only_policies_every_coder_finished(project, admin_user, coder_a, coder_b):
    first = services.create_policy(actor=admin_user, project=project, title="1", text=SAMPLE_TEXT)
    second = services.create_policy(actor=admin_user, project=project, title="2", text=SAMPLE_TEXT)
    services.mark_policy_done(actor=coder_a, policy=first, coder=coder_a)
    services.mark_policy_done(actor=coder_b, policy=first, coder=coder_b)
    services.mark_policy_done(actor=coder_a, policy=second, coder=coder_a)
    assert list(Policy.objects.done_by_all([coder_a.pk, coder_b.pk])) == [first]
    assert set(Policy.objects.done_by_all([coder_a.pk])) == {first, second}
    assert list(Policy.objects.done_by_all([])) == []


def test_memberships_audit_create_change_and_remove(project, admin_user, events):
    user = UserFactory(username="newcomer")
    membership = services.set_membership(actor=admin_user, project=project, user=user, role=Role.CODER)
    services.set_membership(actor=admin_user, project=project, user=user, role=Role.CODER)  # no change
    services.set_membership(actor=admin_user, project=project, user=user, role=Role.SUPERVISOR)
    services.remove_membership(actor=admin_user, membership=membership)
    assert actions(events.new()) == ["membership.create", "membership.update", "membership.delete"]
    with pytest.raises(ValidationError, match="'boss' is not a role"):
        services.set_membership(actor=admin_user, project=project, user=user, role="boss")


def test_project_services_audit(admin_user, events):
    project = services.create_project(actor=admin_user, slug="new-study", name="New")
    services.update_project(actor=admin_user, project=project, blind_coding=False)
    assert actions(events.new()) == ["project.create", "project.update"]
    with pytest.raises(ValidationError, match="already exists"):
        services.create_project(actor=admin_user, slug="new-study", name="Again")


def test_delete_policy_audits_once_and_removes_its_coding(policy, node, coder_a, admin_user, events):
    clause = clause_for(policy, 1)
    services.add_reference(actor=coder_a, clause=clause, node=node, coder=coder_a, start=clause.start, end=clause.end)
    events.new()
    services.delete_policy(actor=admin_user, policy=policy)
    (row,) = events.new()
    assert row.action == "policy.delete" and row.before["references"] == 1
    assert Policy.objects.count() == 0 and Reference.objects.count() == 0


def test_update_reference_to_a_node_already_coding_that_passage_is_refused(policy, project, coder_a, admin_user):
    first = services.add_node(actor=admin_user, project=project, name="Talent")
    second = services.add_node(actor=admin_user, project=project, name="Infrastructure")
    clause = clause_for(policy, 1)
    span = {"clause": clause, "start": clause.start, "end": clause.end, "coder": coder_a}
    ref = services.add_reference(actor=coder_a, node=first, **span)
    services.add_reference(actor=coder_a, node=second, **span)
    with pytest.raises(ValidationError, match="already coded at 'Infrastructure'"):
        services.update_reference(actor=coder_a, reference=ref, version=ref.version, node=second)


def test_update_reference_without_a_change_writes_no_version_and_no_event(policy, node, coder_a, events):
    clause = clause_for(policy, 1)
    ref = services.add_reference(
        actor=coder_a, clause=clause, node=node, coder=coder_a, start=clause.start, end=clause.end
    )
    events.new()
    same = services.update_reference(actor=coder_a, reference=ref, version=1, node=node, memo="")
    assert same.version == 1 and events.new() == []


def test_policy_text_is_stored_with_lf_line_ends(project, admin_user):
    policy = services.create_policy(
        actor=admin_user, project=project, title="CRLF", text="第一条　甲。\r\n第二条　乙。\r"
    )
    assert policy.text == "第一条　甲。\n第二条　乙。\n"
    services.set_policy_text(actor=admin_user, policy=policy, text="第一条　丙。\r\n")
    assert policy.text == "第一条　丙。\n"


def test_free_text_from_a_textarea_is_stored_with_lf_and_resaving_it_changes_nothing(
    project, policy, node, coder_a, events
):
    """Browsers send textareas with CRLF line ends; the API sends what the client has (LF)."""
    services.update_project(actor=None, project=project, description="line one\r\nline two")
    services.update_node(actor=None, node=node, description="定义\r\n第二行")
    clause = clause_for(policy, 1)
    ref = services.add_reference(
        actor=coder_a, clause=clause, node=node, coder=coder_a, start=clause.start, end=clause.end, memo="a\r\nb"
    )
    project.refresh_from_db()
    node.refresh_from_db()
    assert (project.description, node.description, ref.memo) == ("line one\nline two", "定义\n第二行", "a\nb")
    events.new()

    services.update_project(actor=None, project=project, description="line one\r\nline two")
    services.update_node(actor=None, node=node, description="定义\n第二行")
    same = services.update_reference(actor=coder_a, reference=ref, version=1, memo="a\r\nb")

    assert same.version == 1 and [e.action for e in events.new() if e.action != "node.update"] == []
