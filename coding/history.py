"""Reading the audit trail: the project history page and the API's event list.

``Event`` rows are written only by ``services.py``. Here they are filtered (who, which action,
which policy, clause or label) and a page of them is described for people: the policy each
row concerns if it still exists (for a link), names instead of the ids in snapshots, and the
fields that changed. A page costs a fixed number of queries, however many rows it holds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from coding.models import Clause, Event, Node, Policy, Project

# Every action services.py writes (a test holds the two together); the filters offer them.
ACTIONS = (
    "adjudication.create",
    "adjudication.update",
    "clause.merge",
    "clause.split",
    "clause.update",
    "import.upload",
    "membership.create",
    "membership.delete",
    "membership.update",
    "node.create",
    "node.delete",
    "node.merge",
    "node.reorder",
    "node.update",
    "policy.create",
    "policy.delete",
    "policy.done",
    "policy.resegment",
    "policy.set_text",
    "policy.undone",
    "policy.update",
    "project.create",
    "project.import",
    "project.stopwords",
    "project.update",
    "reference.create",
    "reference.delete",
    "reference.restore",
    "reference.update",
    "user.create",
)
AREAS = tuple(dict.fromkeys(f"{action.split('.')[0]}." for action in ACTIONS))

ACTION_PATTERN = r"^[a-z_]{1,40}(\.[a-z_]{0,40})?$"
POLICY_NUMBER_RE = re.compile(r"[0-9]{1,10}")
CLAUSE_LABEL_RE = re.compile(r"([0-9]{1,10})-([0-9]{1,10})")
# Events whose label is a clause label `N-M` when they were written.
CLAUSE_LABELLED = ("clause", "reference", "adjudication")
VALUE_CHARS = 80  # a changed value is cut to this length on the page


def project_events(project: Project) -> QuerySet[Event]:
    """The project's audit trail, newest first, with each actor."""
    return Event.objects.filter(project=project).select_related("actor").order_by("-created_at", "-id")


def filter_events(
    events: QuerySet[Event], project: Project, *, actor: str = "", action: str = "", target: str = ""
) -> QuerySet[Event]:
    """Narrow ``events`` by actor username, action and target.

    ``action`` is exact (``reference.create``) or, ending with a dot or without one, an area
    (``reference.`` or ``reference``: every reference action). ``target`` is a policy number
    (``23``: the policy, its clauses, references, adjudications and done marks), a clause label
    (``23-4``) or any other text, matched case-insensitively within the target's label.
    """
    if actor:
        events = events.filter(actor__username=actor)
    if action:
        if action.endswith(".") or "." not in action:
            events = events.filter(action__startswith=action.rstrip(".") + ".")
        else:
            events = events.filter(action=action)
    if target:
        events = events.filter(_target_q(project, target.strip()))
    return events


def _target_q(project: Project, target: str) -> Q:
    if POLICY_NUMBER_RE.fullmatch(target):
        number = int(target)
        # Labels name the policy by its number when the event was written; ids in snapshots
        # find its rows after a renumbering too, as long as the policy exists.
        q = (
            Q(target_type="policy", target_label__startswith=f"{number}. ")
            | Q(target_type__in=CLAUSE_LABELLED, target_label__startswith=f"{number}-")
            | Q(target_type="donemark", after__policy=number)
            | Q(target_type="donemark", before__policy=number)
        )
        policy_id = Policy.objects.filter(project=project, number=number).values_list("pk", flat=True).first()
        if policy_id is not None:
            q |= Q(target_type="policy", target_id=policy_id) | Q(after__policy_id=policy_id)
            q |= Q(before__policy_id=policy_id)
        return q
    match = CLAUSE_LABEL_RE.fullmatch(target)
    if match:
        q = Q(target_type__in=CLAUSE_LABELLED, target_label=target)
        clause_id = (
            Clause.objects.filter(policy__project=project, policy__number=int(match[1]), number=int(match[2]))
            .values_list("pk", flat=True)
            .first()
        )
        if clause_id is not None:
            q |= Q(target_type="clause", target_id=clause_id) | Q(after__clause_id=clause_id)
            q |= Q(before__clause_id=clause_id)
        return q
    return Q(target_label__icontains=target)


# --- describing a page of events -------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One field of a snapshot, its values before and after as text (None: empty or absent)."""

    field: str
    before: str | None
    after: str | None


@dataclass
class HistoryRow:
    event: Event
    label: str
    policy_number: int | None = None  # the policy it concerns, if that still exists
    clause_label: str = ""  # the clause it concerns, if that still exists (an anchor on the policy page)
    node_id: int | None = None  # the node it concerns, if that still exists
    changes: list[Change] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """ "created" (only an after), "removed" (only a before) or "changed"."""
        if self.event.before is None:
            return "created"
        return "removed" if self.event.after is None else "changed"


def diff(before: Any, after: Any) -> list[tuple[str, Any, Any]]:
    """The fields that differ between two snapshots, as ``(field, before, after)``.

    A creation (``before`` None) lists the values it set and a deletion (``after`` None) the
    values it removed, leaving out empty ones. One level of nesting is flattened
    (``first.end``). A field absent on one side is None there.
    """
    old, new = _flat(before), _flat(after)
    if before is None or after is None:
        side = new if before is None else old
        return [(key, old.get(key), new.get(key)) for key, value in side.items() if value not in (None, "", [], {})]
    keys = dict.fromkeys([*old, *new])
    return [(key, old.get(key), new.get(key)) for key in keys if old.get(key, _MISSING) != new.get(key, _MISSING)]


_MISSING = object()


def _flat(snapshot: Any) -> dict[str, Any]:
    if snapshot is None:
        return {}
    if not isinstance(snapshot, Mapping):
        return {"value": snapshot}
    flat: dict[str, Any] = {}
    for key, value in snapshot.items():
        if isinstance(value, Mapping) and value and not any(isinstance(v, Mapping | list) for v in value.values()):
            flat.update({f"{key}.{inner}": item for inner, item in value.items()})
        else:
            flat[key] = value
    return flat


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _snapshots(event: Event) -> list[Mapping[str, Any]]:
    return [s for s in (event.before, event.after) if isinstance(s, Mapping)]


# Snapshot fields holding ids (shown as what they name today) -> the name the page gives the field.
ID_FIELDS = {
    "clause_id": "clause",
    "policy_id": "policy",
    "node_id": "node",
    "parent_id": "parent",
    "coder_id": "coder",
}


@dataclass
class _Names:
    """The ids in a page of events, resolved with one query per kind."""

    clauses: dict[int, tuple[str, int]] = field(default_factory=dict)  # id -> (label, policy number)
    policies: dict[int, int] = field(default_factory=dict)  # id -> number
    nodes: dict[int, str] = field(default_factory=dict)
    users: dict[int, str] = field(default_factory=dict)

    @classmethod
    def load(cls, project: Project, events: list[Event], *, all_names: bool = True) -> _Names:
        """With ``all_names`` False only what locates a row (clauses and policies)."""
        clause_ids, policy_ids, numbers, node_ids, user_ids = set(), set(), set(), set(), set()
        kinds = {"clause_id": clause_ids, "policy_id": policy_ids, "node_id": node_ids, "parent_id": node_ids}
        kinds["coder_id"] = user_ids
        for event in events:
            target = {"policy": policy_ids, "clause": clause_ids, "node": node_ids}.get(event.target_type)
            if target is not None and event.target_id is not None:
                target.add(event.target_id)
            for snapshot in _snapshots(event):
                if event.target_type == "donemark" and _int(snapshot.get("policy")) is not None:
                    numbers.add(snapshot["policy"])
                for key, ids in kinds.items():
                    if _int(snapshot.get(key)) is not None:
                        ids.add(snapshot[key])
        names = cls()
        if clause_ids:
            rows = Clause.objects.filter(policy__project=project, pk__in=clause_ids)
            names.clauses = {
                pk: (f"{policy}-{number}", policy)
                for pk, number, policy in rows.values_list("pk", "number", "policy__number")
            }
        if policy_ids or numbers:
            rows = Policy.objects.filter(Q(pk__in=policy_ids) | Q(number__in=numbers), project=project)
            names.policies = dict(rows.values_list("pk", "number"))
        if all_names and node_ids:
            names.nodes = dict(Node.objects.filter(project=project, pk__in=node_ids).values_list("pk", "name"))
        if all_names and user_ids:
            users = get_user_model().objects.filter(pk__in=user_ids)
            names.users = dict(users.values_list("pk", get_user_model().USERNAME_FIELD))
        return names

    def show(self, key: str, value: Any) -> str | None:
        """A snapshot value as text; an id as what it names today (``#id`` if that is gone)."""
        if key not in ID_FIELDS or _int(value) is None:
            return _text(value)
        if key == "clause_id":
            named = self.clauses.get(value, (None,))[0]
        elif key == "policy_id":
            named = self.policies.get(value)
        elif key == "coder_id":
            named = self.users.get(value)
        else:
            named = self.nodes.get(value)
        return str(named) if named is not None else f"#{value}"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, int | float):
        text = str(value)
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def describe(project: Project, events: Iterable[Event]) -> list[HistoryRow]:
    """A page of events for people: the label, the policy (and clause, or node) each concerns
    if it still exists, and the changed fields with ids shown as names. At most four queries."""
    events = list(events)
    names = _Names.load(project, events)
    rows = []
    for event in events:
        row = _locate(event, names)
        row.changes = [
            Change(ID_FIELDS.get(key, key), names.show(key, old), names.show(key, new))
            for key, old, new in diff(event.before, event.after)
        ]
        rows.append(row)
    return rows


def _locate(event: Event, names: _Names) -> HistoryRow:
    row = HistoryRow(event=event, label=event.target_label)
    snapshots = _snapshots(event)
    if event.target_type == "policy":
        row.policy_number = names.policies.get(event.target_id)
    elif event.target_type == "node":
        row.node_id = event.target_id if event.target_id in names.nodes else None
    elif event.target_type == "donemark":
        existing = set(names.policies.values())
        row.policy_number = next((s["policy"] for s in snapshots if s.get("policy") in existing), None)
    else:
        clause_id = event.target_id if event.target_type == "clause" else None
        policy_id = None
        for snapshot in snapshots:
            clause_id = clause_id or _int(snapshot.get("clause_id"))
            policy_id = policy_id or _int(snapshot.get("policy_id"))
        if clause_id in names.clauses:
            row.clause_label, row.policy_number = names.clauses[clause_id]
            # A reference's change or deletion was written with a technical label; people use the clause's.
            if event.target_type == "reference" and not CLAUSE_LABEL_RE.fullmatch(row.label):
                row.label = row.clause_label
        elif policy_id in names.policies:
            row.policy_number = names.policies[policy_id]
    return row


def policy_numbers(project: Project, events: Iterable[Event]) -> dict[int, int | None]:
    """For the API: event id -> the number of the policy the event concerns, if that policy
    still exists (else None, as for events about no policy). At most two queries."""
    events = list(events)
    names = _Names.load(project, events, all_names=False)
    return {event.pk: _locate(event, names).policy_number for event in events}
