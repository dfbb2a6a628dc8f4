"""Every write to projects, memberships, policies, clauses, nodes, references and done marks.

Each function is atomic and writes exactly one audit ``Event`` per change in the same
transaction: the only place the audit trail is written. Functions take keyword arguments,
validate domain rules and raise ``ValidationError`` with a message a person understands;
who may call them is decided before, in ``coding/access.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, F, Max, OuterRef, Q
from django.utils import timezone

from coding.dates import parse_partial_date
from coding.models import (
    Clause,
    DoneMark,
    Event,
    Membership,
    Node,
    Policy,
    Project,
    Reference,
    Role,
)
from coding.segmentation import RULES, segment

POLICY_FIELDS = (
    "number",
    "title",
    "potency_level",
    "release_departments",
    "jurisdiction",
    "release_date",
    "implementation_date",
    "source_url",
    "language",
    "segmentation_rule",
    "attributes",
)
NODE_FIELDS = ("name", "description", "colour", "shortcut", "parent_id", "position")
REFERENCE_FIELDS = (
    "policy_id",
    "clause_id",
    "node_id",
    "coder_id",
    "consensus",
    "start",
    "end",
    "text",
    "memo",
    "version",
)


# --- audit ---------------------------------------------------------------------------------


def _snapshot(obj, fields: Iterable[str]) -> dict[str, Any]:
    return {field: getattr(obj, field) for field in fields}


def record_event(
    *,
    actor,
    project: Project | None,
    action: str,
    target,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    label: str = "",
) -> Event:
    """Append one audit row. Called only by the services in this module."""
    return Event.objects.create(
        project=project,
        actor=actor if getattr(actor, "pk", None) else None,
        action=action,
        target_type=type(target).__name__.lower(),
        target_id=target.pk,
        target_label=(label or str(target))[:300],
        before=dict(before) if before is not None else None,
        after=dict(after) if after is not None else None,
    )


def _validate(obj) -> None:
    """Model validation without the uniqueness checks the database does anyway."""
    obj.full_clean(validate_unique=False, validate_constraints=False)


# --- projects and members ------------------------------------------------------------------


@transaction.atomic
def create_project(*, actor, slug: str, name: str, description: str = "", blind_coding: bool = True) -> Project:
    if Project.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"A project with slug {slug!r} already exists."})
    project = Project(slug=slug, name=name, description=description, blind_coding=blind_coding)
    _validate(project)
    project.save()
    fields = ("slug", "name", "description", "blind_coding")
    record_event(
        actor=actor, project=project, action="project.create", target=project, after=_snapshot(project, fields)
    )
    return project


@transaction.atomic
def update_project(*, actor, project: Project, **changes: Any) -> Project:
    fields = ("name", "description", "blind_coding")
    unknown = set(changes) - set(fields)
    if unknown:
        raise ValidationError(f"Unknown project field(s): {', '.join(sorted(unknown))}.")
    before = _snapshot(project, fields)
    for field, value in changes.items():
        setattr(project, field, value)
    _validate(project)
    project.save()
    record_event(
        actor=actor,
        project=project,
        action="project.update",
        target=project,
        before=before,
        after=_snapshot(project, fields),
    )
    return project


@transaction.atomic
def set_membership(*, actor, project: Project, user, role: str) -> Membership:
    """Add ``user`` to ``project`` with ``role``, or change their role."""
    if role not in Role.values:
        raise ValidationError({"role": f"{role!r} is not a role; use one of {', '.join(Role.values)}."})
    membership = Membership.objects.select_for_update().filter(project=project, user=user).first()
    if membership is None:
        membership = Membership.objects.create(project=project, user=user, role=role)
        record_event(
            actor=actor,
            project=project,
            action="membership.create",
            target=membership,
            after={"user": user.get_username(), "role": role},
        )
    elif membership.role != role:
        before = {"user": user.get_username(), "role": membership.role}
        membership.role = role
        membership.save(update_fields=["role"])
        record_event(
            actor=actor,
            project=project,
            action="membership.update",
            target=membership,
            before=before,
            after={"user": user.get_username(), "role": role},
        )
    return membership


@transaction.atomic
def remove_membership(*, actor, membership: Membership) -> None:
    before = {"user": membership.user.get_username(), "role": membership.role}
    record_event(actor=actor, project=membership.project, action="membership.delete", target=membership, before=before)
    membership.delete()


# --- policies and clauses ------------------------------------------------------------------


def _policy_snapshot(policy: Policy) -> dict[str, Any]:
    data = _snapshot(policy, POLICY_FIELDS)
    data["text_length"] = len(policy.text)
    return data


def _clean_policy_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(POLICY_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown policy field(s): {', '.join(sorted(unknown))}.")
    cleaned = dict(fields)
    for name in ("release_date", "implementation_date"):
        if name in cleaned:
            try:
                cleaned[name] = parse_partial_date(cleaned[name]) or ""
            except ValueError as exc:
                raise ValidationError({name: str(exc)}) from None
    if "release_departments" in cleaned:
        departments = cleaned["release_departments"]
        if isinstance(departments, str):
            departments = departments.split(";")
        cleaned["release_departments"] = [d.strip() for d in departments or [] if d and d.strip()]
    return cleaned


def _write_clauses(policy: Policy, rule: str) -> tuple[int, str]:
    """Replace the policy's clauses by the segmentation of its text under ``rule``.

    Stores the rule actually used on the policy (a rule that finds nothing falls back to
    paragraphs) and returns the clause count and the segmenter's message.
    """
    policy.clauses.all().delete()
    if not policy.text:
        policy.segmentation_rule = ""
        return 0, ""
    result = segment(policy.text, rule)
    Clause.objects.bulk_create(
        Clause(policy=policy, number=span.number, start=span.start, end=span.end) for span in result.clauses
    )
    policy.segmentation_rule = result.rule_used
    return len(result.clauses), result.message


def next_policy_number(project: Project) -> int:
    return (Policy.objects.filter(project=project).aggregate(m=Max("number"))["m"] or 0) + 1


@transaction.atomic
def create_policy(
    *, actor, project: Project, title: str, text: str = "", rule: str = "article", **fields: Any
) -> Policy:
    """Create a policy, store its text once and segment it into clauses under ``rule``.

    ``number`` defaults to the next free one. A policy without text is a catalogue entry
    that cannot be coded until a text is attached (``set_policy_text``).
    """
    if rule not in RULES:
        raise ValidationError({"rule": f"{rule!r} is not a segmentation rule; use one of {', '.join(RULES)}."})
    cleaned = _clean_policy_fields(fields)
    number = cleaned.pop("number", None) or next_policy_number(project)
    if Policy.objects.filter(project=project, number=number).exists():
        raise ValidationError({"number": f"Policy number {number} already exists in this project."})
    policy = Policy(project=project, number=number, title=title, text=text, **cleaned)
    _validate(policy)
    policy.save()
    clause_count, message = _write_clauses(policy, rule)
    policy.save(update_fields=["segmentation_rule"])
    after = _policy_snapshot(policy) | {"clauses": clause_count}
    if message:
        after["segmentation_message"] = message
    record_event(actor=actor, project=project, action="policy.create", target=policy, after=after)
    return policy


@transaction.atomic
def update_policy(*, actor, policy: Policy, **fields: Any) -> Policy:
    """Change a policy's metadata (not its text: see ``set_policy_text``)."""
    cleaned = _clean_policy_fields(fields)
    number = cleaned.get("number", policy.number)
    if number != policy.number and Policy.objects.filter(project=policy.project_id, number=number).exists():
        raise ValidationError({"number": f"Policy number {cleaned['number']} already exists in this project."})
    before = _policy_snapshot(policy)
    for name, value in cleaned.items():
        setattr(policy, name, value)
    _validate(policy)
    policy.save()
    record_event(
        actor=actor,
        project=policy.project,
        action="policy.update",
        target=policy,
        before=before,
        after=_policy_snapshot(policy),
    )
    return policy


def _refuse_if_coded(policy: Policy, doing: str) -> None:
    count = Reference.objects.filter(policy=policy).count()
    if count:
        raise ValidationError(
            f"Policy {policy.number} already has {count} reference(s); {doing} would move them off their text. "
            "Delete or export the references first."
        )


@transaction.atomic
def set_policy_text(*, actor, policy: Policy, text: str, rule: str | None = None) -> Policy:
    """Attach or replace a policy's text and re-segment it. Refused once it has references."""
    rule = rule or policy.segmentation_rule or "article"
    if rule not in RULES:
        raise ValidationError({"rule": f"{rule!r} is not a segmentation rule; use one of {', '.join(RULES)}."})
    _refuse_if_coded(policy, "changing its text")
    before = _policy_snapshot(policy) | {"clauses": policy.clauses.count()}
    policy.clauses.all().delete()
    policy.text = text
    policy.save(update_fields=["text", "updated_at"])
    clause_count, message = _write_clauses(policy, rule)
    policy.save(update_fields=["segmentation_rule"])
    after = _policy_snapshot(policy) | {"clauses": clause_count, "segmentation_message": message}
    record_event(
        actor=actor, project=policy.project, action="policy.set_text", target=policy, before=before, after=after
    )
    return policy


@transaction.atomic
def resegment_policy(*, actor, policy: Policy, rule: str) -> tuple[int, str]:
    """Segment the policy's text anew under ``rule``; refused once it has references.

    Returns the number of clauses and the segmenter's message (e.g. a fallback).
    """
    if rule not in RULES:
        raise ValidationError({"rule": f"{rule!r} is not a segmentation rule; use one of {', '.join(RULES)}."})
    if not policy.text:
        raise ValidationError(f"Policy {policy.number} has no text to segment yet.")
    _refuse_if_coded(policy, "re-segmenting it")
    before = {"rule": policy.segmentation_rule, "clauses": policy.clauses.count()}
    clause_count, message = _write_clauses(policy, rule)
    policy.save(update_fields=["segmentation_rule", "updated_at"])
    record_event(
        actor=actor,
        project=policy.project,
        action="policy.resegment",
        target=policy,
        before=before,
        after={"rule": policy.segmentation_rule, "clauses": clause_count, "message": message},
    )
    return clause_count, message


@transaction.atomic
def update_clause(*, actor, clause: Clause, start: int, end: int) -> Clause:
    """Move a clause's boundaries (clause review before coding starts)."""
    policy = clause.policy
    if not 0 <= start < end <= len(policy.text):
        raise ValidationError(f"Clause bounds [{start}, {end}) must satisfy 0 <= start < end <= {len(policy.text)}.")
    overlapping = Clause.objects.filter(policy=policy, start__lt=end, end__gt=start).exclude(pk=clause.pk)
    if overlapping.exists():
        raise ValidationError(f"Clause {clause.label_for(policy)} would overlap another clause.")
    if clause.references.filter(Q(start__lt=start) | Q(end__gt=end)).exists():
        raise ValidationError(f"Clause {clause.label_for(policy)} has references outside the new bounds.")
    before = {"start": clause.start, "end": clause.end}
    clause.start, clause.end = start, end
    clause.save(update_fields=["start", "end"])
    record_event(
        actor=actor,
        project=policy.project,
        action="clause.update",
        target=clause,
        before=before,
        after={"start": start, "end": end},
        label=clause.label_for(policy),
    )
    return clause


@transaction.atomic
def delete_policy(*, actor, policy: Policy) -> None:
    project = policy.project
    before = _policy_snapshot(policy) | {"references": Reference.objects.filter(policy=policy).count()}
    record_event(actor=actor, project=project, action="policy.delete", target=policy, before=before)
    Reference.objects.filter(policy=policy).delete()
    policy.delete()


# --- codebook ------------------------------------------------------------------------------


def _check_parent(project: Project, parent: Node | None, node: Node | None = None) -> None:
    if parent is None:
        return
    if parent.project_id != project.pk:
        raise ValidationError({"parent": "The parent node belongs to another project."})
    if node is not None:
        ancestor: Node | None = parent
        while ancestor is not None:
            if ancestor.pk == node.pk:
                raise ValidationError({"parent": f"Node {node.name!r} cannot move under its own descendant."})
            ancestor = ancestor.parent


def _check_node_names(
    project: Project, parent: Node | None, name: str, shortcut: str, exclude: int | None = None
) -> None:
    siblings = Node.objects.filter(project=project, parent=parent, name=name)
    if siblings.exclude(pk=exclude).exists():
        where = f"under {parent.name!r}" if parent else "at the top level"
        raise ValidationError({"name": f"A node named {name!r} already exists {where}."})
    if shortcut and Node.objects.filter(project=project, shortcut=shortcut).exclude(pk=exclude).exists():
        raise ValidationError({"shortcut": f"Shortcut {shortcut!r} is already used by another node."})


@transaction.atomic
def add_node(
    *,
    actor,
    project: Project,
    name: str,
    parent: Node | None = None,
    description: str = "",
    colour: str = "#ffe08a",
    shortcut: str = "",
    position: int | None = None,
) -> Node:
    name = name.strip()
    _check_parent(project, parent)
    _check_node_names(project, parent, name, shortcut)
    if position is None:
        position = (Node.objects.filter(project=project, parent=parent).aggregate(m=Max("position"))["m"] or 0) + 1
    node = Node(
        project=project,
        parent=parent,
        name=name,
        description=description,
        colour=colour,
        shortcut=shortcut,
        position=position,
    )
    _validate(node)
    node.save()
    record_event(actor=actor, project=project, action="node.create", target=node, after=_snapshot(node, NODE_FIELDS))
    return node


@transaction.atomic
def update_node(*, actor, node: Node, **changes: Any) -> Node:
    """Rename, re-describe, recolour or move a node (``parent``, ``position``)."""
    allowed = {"name", "description", "colour", "shortcut", "parent", "position"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError(f"Unknown node field(s): {', '.join(sorted(unknown))}.")
    parent = changes.get("parent", node.parent)
    _check_parent(node.project, parent, node)
    name = changes.get("name", node.name).strip()
    _check_node_names(node.project, parent, name, changes.get("shortcut", node.shortcut), exclude=node.pk)
    before = _snapshot(node, NODE_FIELDS)
    for field, value in changes.items():
        setattr(node, field, value.strip() if field == "name" else value)
    _validate(node)
    node.save()
    record_event(
        actor=actor,
        project=node.project,
        action="node.update",
        target=node,
        before=before,
        after=_snapshot(node, NODE_FIELDS),
    )
    return node


@transaction.atomic
def delete_node(*, actor, node: Node) -> None:
    """Delete a node and its sub-nodes; refused while any of them has references."""
    subtree = _subtree_ids(node)
    count = Reference.objects.filter(node_id__in=subtree).count()
    if count:
        raise ValidationError(
            f"Node {node.name!r} (with its sub-nodes) has {count} reference(s); merge it into another node instead."
        )
    before = _snapshot(node, NODE_FIELDS) | {"subtree": len(subtree)}
    record_event(actor=actor, project=node.project, action="node.delete", target=node, before=before)
    node.delete()


def _subtree_ids(node: Node) -> list[int]:
    """Ids of ``node`` and its descendants, from one query of the project's codebook."""
    children: dict[int | None, list[int]] = {}
    for pk, parent_id in Node.objects.filter(project=node.project_id).values_list("pk", "parent_id"):
        children.setdefault(parent_id, []).append(pk)
    ids, stack = [], [node.pk]
    while stack:
        current = stack.pop()
        ids.append(current)
        stack.extend(children.get(current, []))
    return ids


@transaction.atomic
def merge_nodes(*, actor, source: Node, target: Node) -> Node:
    """Move every reference and child of ``source`` to ``target``, then delete ``source``.

    A reference that would duplicate one the same coder already has at ``target`` is
    dropped (the coder coded that passage at both nodes; after the merge it is once).
    """
    if source.project_id != target.project_id:
        raise ValidationError("Nodes of different projects cannot be merged.")
    if source.pk == target.pk:
        raise ValidationError("A node cannot be merged into itself.")
    if target.pk in _subtree_ids(source):
        raise ValidationError(f"Node {source.name!r} cannot merge into its own descendant {target.name!r}.")
    same_passage_at_target = Reference.objects.filter(
        node=target,
        clause_id=OuterRef("clause_id"),
        start=OuterRef("start"),
        end=OuterRef("end"),
        consensus=OuterRef("consensus"),
    ).filter(Q(consensus=True) | Q(coder_id=OuterRef("coder_id")))
    at_source = Reference.objects.filter(node=source)
    dropped, _ = at_source.filter(Exists(same_passage_at_target)).delete()
    moved = at_source.update(node=target, version=F("version") + 1, updated_at=timezone.now())
    for child in Node.objects.filter(parent=source):
        _check_node_names(target.project, target, child.name, "", exclude=child.pk)
        child.parent = target
        child.save(update_fields=["parent"])
    before = _snapshot(source, NODE_FIELDS) | {"id": source.pk}
    record_event(
        actor=actor,
        project=target.project,
        action="node.merge",
        target=target,
        before=before,
        after={"into": target.pk, "references_moved": moved, "duplicates_dropped": dropped},
    )
    source.delete()
    return target


# --- references ----------------------------------------------------------------------------


def _reference_snapshot(reference: Reference) -> dict[str, Any]:
    return _snapshot(reference, REFERENCE_FIELDS)


def _check_coder(project: Project, coder) -> None:
    if coder.is_superuser:
        return
    if not Membership.objects.filter(project=project, user=coder).exists():
        raise ValidationError(f"{coder.get_username()} is not a member of this project.")


@transaction.atomic
def add_reference(
    *,
    actor,
    clause: Clause,
    node: Node,
    start: int,
    end: int,
    coder=None,
    consensus: bool = False,
    memo: str = "",
) -> Reference:
    """Code ``[start, end)`` of ``clause`` at ``node`` in ``coder``'s layer (or the consensus).

    Offsets are code points into the policy text and must lie inside the clause. Coding
    the same span at the same node twice in one layer returns the existing reference
    rather than a duplicate, so a retried request never duplicates work.
    """
    policy = clause.policy
    if node.project_id != policy.project_id:
        raise ValidationError({"node": "The node belongs to another project than the policy."})
    if not 0 <= start < end:
        raise ValidationError({"start": f"Offsets [{start}, {end}) are not a passage: start must be before end."})
    if start < clause.start or end > clause.end:
        raise ValidationError(
            {
                "end": f"Offsets [{start}, {end}) lie outside clause {clause.label_for(policy)} "
                f"[{clause.start}, {clause.end})."
            }
        )
    if consensus:
        coder = None
    elif coder is None:
        raise ValidationError("A reference belongs to a coder or to the consensus layer.")
    else:
        _check_coder(policy.project, coder)
    existing = Reference.objects.filter(
        clause=clause, node=node, start=start, end=end, consensus=consensus, coder=coder
    ).first()
    if existing is not None:
        return existing
    reference = Reference(
        policy=policy,
        clause=clause,
        node=node,
        coder=coder,
        consensus=consensus,
        created_by=actor,
        start=start,
        end=end,
        text=policy.text[start:end],
        memo=memo,
    )
    _validate(reference)
    reference.save()
    record_event(
        actor=actor,
        project=policy.project,
        action="reference.create",
        target=reference,
        after=_reference_snapshot(reference),
        label=clause.label_for(policy),
    )
    return reference


def add_references_for_selection(
    *, actor, policy: Policy, node: Node, start: int, end: int, coder=None, consensus: bool = False, memo: str = ""
) -> list[Reference]:
    """Code a selection that may cross clauses: one reference per clause it touches.

    Text between clauses (headings) is not coded. Raises ValidationError when the
    selection touches no clause.
    """
    if not 0 <= start < end <= len(policy.text):
        raise ValidationError(
            {"end": f"Offsets [{start}, {end}) are outside the policy text (length {len(policy.text)})."}
        )
    with transaction.atomic():
        clauses = list(Clause.objects.filter(policy=policy, start__lt=end, end__gt=start).order_by("start"))
        if not clauses:
            raise ValidationError("The selection lies outside every clause (a heading or blank text).")
        references = []
        for clause in clauses:
            clause.policy = policy
            references.append(
                add_reference(
                    actor=actor,
                    clause=clause,
                    node=node,
                    start=max(start, clause.start),
                    end=min(end, clause.end),
                    coder=coder,
                    consensus=consensus,
                    memo=memo,
                )
            )
        return references


class StaleReference(ValidationError):
    """The reference changed elsewhere since the caller read it."""

    def __init__(self, reference: Reference):
        super().__init__(
            f"Reference {reference.pk} was changed elsewhere (now version {reference.version}); "
            "reload it and apply your change again."
        )
        self.current = reference


@transaction.atomic
def update_reference(
    *, actor, reference: Reference, version: int, node: Node | None = None, memo: str | None = None
) -> Reference:
    """Change a reference's node or memo if nobody changed it since ``version`` was read."""
    current = Reference.objects.select_for_update().get(pk=reference.pk)
    if current.version != version:
        raise StaleReference(current)
    if node is not None and node.project_id != current.policy.project_id:
        raise ValidationError({"node": "The node belongs to another project than the policy."})
    before = _reference_snapshot(current)
    if node is not None:
        current.node = node
    if memo is not None:
        current.memo = memo
    current.version += 1
    current.save()
    record_event(
        actor=actor,
        project=current.policy.project,
        action="reference.update",
        target=current,
        before=before,
        after=_reference_snapshot(current),
    )
    return current


@transaction.atomic
def delete_reference(*, actor, reference: Reference, version: int | None = None) -> None:
    current = Reference.objects.select_for_update().filter(pk=reference.pk).first()
    if current is None:
        return  # already gone: deleting twice (a retried request) is not an error
    if version is not None and current.version != version:
        raise StaleReference(current)
    record_event(
        actor=actor,
        project=current.policy.project,
        action="reference.delete",
        target=current,
        before=_reference_snapshot(current),
    )
    current.delete()


# --- done marks ----------------------------------------------------------------------------


@transaction.atomic
def mark_policy_done(*, actor, policy: Policy, coder) -> DoneMark:
    _check_coder(policy.project, coder)
    mark, created = DoneMark.objects.get_or_create(policy=policy, coder=coder)
    if created:
        record_event(
            actor=actor,
            project=policy.project,
            action="policy.done",
            target=mark,
            after={"policy": policy.number, "coder": coder.get_username()},
        )
    return mark


@transaction.atomic
def unmark_policy_done(*, actor, policy: Policy, coder) -> None:
    mark = DoneMark.objects.filter(policy=policy, coder=coder).first()
    if mark is None:
        return
    record_event(
        actor=actor,
        project=policy.project,
        action="policy.undone",
        target=mark,
        before={"policy": policy.number, "coder": coder.get_username()},
    )
    mark.delete()
