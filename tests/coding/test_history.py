import re
from pathlib import Path

import pytest

from coding import history, services
from coding.models import Event

ROOT = Path(__file__).resolve().parents[2]


def test_actions_list_every_action_the_services_write():
    source = (ROOT / "coding" / "services.py").read_text()
    written = set(re.findall(r'(?:action=|self\.event\(\s*)"([a-z_]+\.[a-z_]+)"', source))

    assert len(written) > 20  # the pattern still finds them
    assert set(history.ACTIONS) == written
    assert all(re.fullmatch(history.ACTION_PATTERN, action) for action in history.ACTIONS)


def test_diff_of_an_update_lists_only_the_changed_fields():
    before = {"name": "Talent", "colour": "#ffe08a", "parent_id": 1}
    after = {"name": "Talents", "colour": "#ffe08a", "parent_id": None}

    assert history.diff(before, after) == [("name", "Talent", "Talents"), ("parent_id", 1, None)]


def test_diff_of_a_creation_and_a_deletion_leaves_out_empty_values():
    snapshot = {"name": "Talent", "description": "", "shortcut": "", "parent_id": None, "position": 0, "tags": []}

    assert history.diff(None, snapshot) == [("name", None, "Talent"), ("position", None, 0)]
    assert history.diff(snapshot, None) == [("name", "Talent", None), ("position", 0, None)]


def test_diff_flattens_one_level_and_names_fields_only_on_one_side():
    before = {"number": 4, "start": 10, "end": 90}
    after = {"first": {"number": 4, "start": 10, "end": 50}, "second": {"number": 5, "start": 50, "end": 90}}

    changes = history.diff(before, after)

    assert changes == [
        ("number", 4, None),
        ("start", 10, None),
        ("end", 90, None),
        ("first.number", None, 4),
        ("first.start", None, 10),
        ("first.end", None, 50),
        ("second.number", None, 5),
        ("second.start", None, 50),
        ("second.end", None, 90),
    ]


def test_diff_sees_a_field_set_to_null_and_a_field_that_appears():
    assert history.diff({"memo": "x"}, {"memo": None}) == [("memo", "x", None)]
    assert history.diff({"rule": "article"}, {"rule": "article", "message": None}) == [("message", None, None)]
    assert history.diff({"a": 1}, {"a": 1}) == []


@pytest.mark.django_db
def test_describe_names_ids_and_marks_ids_that_are_gone(project, policy, node, admin_user, coder_a):
    talent = services.add_node(actor=admin_user, project=project, name="Talent")
    gone = services.add_node(actor=admin_user, project=project, name="Gone")
    services.update_node(actor=admin_user, node=talent, parent=gone)
    services.update_node(actor=admin_user, node=talent, parent=node)
    gone_id = gone.pk
    services.delete_node(actor=admin_user, node=gone)
    events = list(Event.objects.order_by("id"))

    rows = history.describe(project, events)

    moves = [row for row in rows if row.event.action == "node.update"]
    parents = [[(c.before, c.after) for c in row.changes if c.field == "parent"] for row in moves]
    assert parents == [[(None, f"#{gone_id}")], [(f"#{gone_id}", "Supply-based")]]
    assert [row.node_id for row in moves] == [talent.pk, talent.pk]
    [removed] = [row for row in rows if row.event.action == "node.delete"]
    assert removed.node_id is None and removed.label == "Gone"


def test_a_reference_event_with_an_old_technical_label_is_shown_with_its_clause_label(project, policy, node, coder_a):
    clause = policy.clauses.get(number=2)
    reference = services.add_reference(
        actor=coder_a, clause=clause, node=node, coder=coder_a, start=clause.start, end=clause.end
    )
    services.delete_reference(actor=coder_a, reference=reference)
    deleted = Event.objects.get(action="reference.delete")
    assert deleted.target_label == f"{policy.number}-2"  # written with the clause label now
    # Events written before that carried the model's repr; the page still shows the clause.
    Event.objects.filter(pk=deleted.pk).update(target_label=f"reference {reference.pk} [0, 10) at {node.pk}")

    [row] = [r for r in history.describe(project, Event.objects.filter(pk=deleted.pk)) if r.event.pk == deleted.pk]

    assert (row.label, row.clause_label, row.policy_number) == (f"{policy.number}-2",) * 2 + (policy.number,)
