"""Every write to projects, memberships, policies, clauses, nodes, references and done marks.

Each function is atomic and writes exactly one audit ``Event`` per change in the same
transaction: the only place the audit trail is written. Functions take keyword arguments,
validate domain rules and raise ``ValidationError`` with a message a person understands;
who may call them is decided before, in ``coding/access.py``.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, Max, OuterRef, Q
from django.utils import timezone
from django.utils.text import slugify

from coding import refi
from coding.access import MEMBER_OF
from coding.codebook_io import CodebookEntry
from coding.dates import parse_partial_date
from coding.importing import ParsedImport, PolicyRow, Problem
from coding.models import (
    Adjudication,
    Clause,
    DoneMark,
    Event,
    ImportUpload,
    Membership,
    Node,
    Policy,
    Project,
    Reference,
    Role,
)
from coding.segmentation import RULES, Span, segment

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


def record_event(**fields: Any) -> Event:
    """Append one audit row (the fields of ``_unsaved_event``). Called only by the services in
    this module."""
    event = _unsaved_event(**fields)
    event.save(force_insert=True)
    return event


def _unsaved_event(
    *,
    actor,
    project: Project | None,
    action: str,
    target,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    label: str = "",
) -> Event:
    """The audit row ``record_event`` saves, unsaved: for services that insert many in one
    query (imports, adopting agreed coding)."""
    return Event(
        project=project,
        actor=actor if getattr(actor, "pk", None) else None,
        action=action,
        target_type=type(target).__name__.lower(),
        target_id=target.pk,
        target_label=(label or str(target))[:300],
        before=dict(before) if before is not None else None,
        after=dict(after) if after is not None else None,
    )


def _validate(obj, exclude: Iterable[str] = ()) -> None:
    """Model validation without the uniqueness checks the database does anyway
    (and without the fields in ``exclude``)."""
    obj.full_clean(exclude=list(exclude) or None, validate_unique=False, validate_constraints=False)


# A reference's related rows are passed in as rows just read, and the database's foreign
# keys check them again on insert; validating them would cost a query each on every save.
REFERENCE_RELATIONS = ("policy", "clause", "node", "coder", "created_by")


# --- projects and members ------------------------------------------------------------------

# /projects/new/ is the new-project page: a project with that slug could never be reached.
RESERVED_SLUGS = frozenset({"new"})


@transaction.atomic
def create_project(*, actor, slug: str, name: str, description: str = "", blind_coding: bool = True) -> Project:
    if slug in RESERVED_SLUGS:
        raise ValidationError({"slug": f"{slug!r} is the address of another page (/projects/{slug}/); choose another."})
    if Project.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"A project with slug {slug!r} already exists."})
    # Free text arrives with the browser's CRLF from textareas: stored with LF, like policy texts.
    description = normalise_text(description)
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
    if isinstance(changes.get("description"), str):
        changes["description"] = normalise_text(changes["description"])
    for field, value in changes.items():
        setattr(project, field, value)
    if _snapshot(project, fields) == before:
        return project  # nothing changed: nothing to audit
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


def normalise_text(text: str) -> str:
    """Policy text as stored: LF line endings (offsets refer to this text)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


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
    text = normalise_text(text)
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
    policy.text = normalise_text(text)
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
        description=normalise_text(description),
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
    if isinstance(changes.get("description"), str):
        changes["description"] = normalise_text(changes["description"])
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
    if coder.is_superuser or project.pk in getattr(coder, MEMBER_OF, ()):
        return  # a superuser, or a membership the access layer read in this request
    if not Membership.objects.filter(project=project, user=coder).exists():
        raise ValidationError(f"{coder.get_username()} is not a member of this project.")


def _insert_unless_duplicate(reference: Reference) -> Reference | None:
    """Insert ``reference``; if the same coder (or the consensus) coded the same span at the
    same node in the meantime, return that row instead and insert nothing.

    Two tabs of one coder can pass the "already coded?" check at the same moment; the
    unique constraint then rejects the second insert. The savepoint keeps the caller's
    transaction usable (PostgreSQL aborts it on an error otherwise).
    """
    try:
        with transaction.atomic():
            reference.save(force_insert=True)
    except IntegrityError:
        existing = Reference.objects.filter(
            clause_id=reference.clause_id,
            node_id=reference.node_id,
            start=reference.start,
            end=reference.end,
            consensus=reference.consensus,
            coder_id=reference.coder_id,
        ).first()
        if existing is None:
            raise
        return existing
    return None


def _store_reference(*, actor, reference: Reference, action: str) -> Reference:
    """Validate and insert a reference built from rows just read, and audit it; when the
    same passage is already coded at the node in that layer, return that row instead and
    audit nothing (the unique constraint decides, so there is no separate look-up first)."""
    _validate(reference, exclude=REFERENCE_RELATIONS)
    existing = _insert_unless_duplicate(reference)
    if existing is not None:
        return existing
    record_event(
        actor=actor,
        project=reference.policy.project,
        action=action,
        target=reference,
        after=_reference_snapshot(reference),
        label=reference.clause.label_for(reference.policy),
    )
    return reference


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
        memo=normalise_text(memo),
    )
    return _store_reference(actor=actor, reference=reference, action="reference.create")


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


def _locked_references():
    """References read to change them: the row locked (PostgreSQL), with its clause, policy and
    project in the same query, so the audit row gets its label `N-M` without another one."""
    related = Reference.objects.select_related("clause", "policy__project").defer("policy__text")
    return related.select_for_update(of=("self",))


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
    current = _locked_references().get(pk=reference.pk)
    if current.version != version:
        raise StaleReference(current)
    if node is not None and node.project_id != current.policy.project_id:
        raise ValidationError({"node": "The node belongs to another project than the policy."})
    if node is not None and node.pk != current.node_id:
        same_passage = Reference.objects.filter(
            node=node, clause_id=current.clause_id, start=current.start, end=current.end, consensus=current.consensus
        )
        if not current.consensus:
            same_passage = same_passage.filter(coder_id=current.coder_id)
        if same_passage.exists():
            raise ValidationError({"node": f"This passage is already coded at {node.name!r} in the same layer."})
    before = _reference_snapshot(current)
    if node is not None:
        current.node = node
    if memo is not None:
        current.memo = normalise_text(memo)
    if (current.node_id, current.memo) == (before["node_id"], before["memo"]):
        return current  # nothing changed: no new version, nothing to audit
    current.version += 1
    current.save()
    record_event(
        actor=actor,
        project=current.policy.project,
        action="reference.update",
        target=current,
        before=before,
        after=_reference_snapshot(current),
        label=current.clause.label_for(current.policy),
    )
    return current


@transaction.atomic
def delete_reference(*, actor, reference: Reference, version: int | None = None) -> Event | None:
    """Delete a reference; returns its audit event (what ``restore_reference`` undoes), or
    None when it was already gone."""
    current = _locked_references().filter(pk=reference.pk).first()
    if current is None:
        return None  # already gone: deleting twice (a retried request) is not an error
    if version is not None and current.version != version:
        raise StaleReference(current)
    event = record_event(
        actor=actor,
        project=current.policy.project,
        action="reference.delete",
        target=current,
        before=_reference_snapshot(current),
        label=current.clause.label_for(current.policy),
    )
    current.delete()
    return event


@transaction.atomic
def restore_reference(*, actor, event: Event) -> Reference:
    """Undo a deletion: re-create the reference that ``event`` (its ``reference.delete``
    audit row) deleted, with the same id, layer, node, span and memo.

    Restoring twice returns the restored reference, and so does restoring a passage the
    coder has meanwhile coded again at the same node. Refused with the reason when the
    clause or node has gone since (re-segmented, merged, deleted) or the text changed.
    The version continues from the deleted one, so an edit form read before the deletion
    still gets a conflict rather than overwriting.
    """
    if event.action != "reference.delete" or not event.before:
        raise ValidationError("Only a deleted reference can be restored.")
    snap = event.before
    current = Reference.objects.filter(pk=event.target_id).first()
    if current is not None:
        return current
    clause = Clause.objects.select_related("policy__project").filter(pk=snap["clause_id"]).first()
    if clause is None or clause.policy_id != snap["policy_id"]:
        raise ValidationError("The clause of this reference no longer exists (the policy was re-segmented).")
    policy = clause.policy
    node = Node.objects.filter(pk=snap["node_id"], project_id=policy.project_id).first()
    if node is None:
        raise ValidationError("The node of this reference was deleted or merged since; code the passage again.")
    if policy.text[snap["start"] : snap["end"]] != snap["text"]:
        raise ValidationError("The policy text changed since the reference was deleted; code the passage again.")
    if not snap["consensus"]:
        coder = get_user_model().objects.filter(pk=snap["coder_id"]).first()
        if coder is None:
            raise ValidationError("The coder of this reference no longer exists.")
        _check_coder(policy.project, coder)
    reference = Reference(
        pk=event.target_id,
        policy=policy,
        clause=clause,
        node=node,
        coder_id=snap["coder_id"],
        consensus=snap["consensus"],
        created_by=actor,
        start=snap["start"],
        end=snap["end"],
        text=snap["text"],
        memo=snap.get("memo") or "",
        version=snap["version"] + 1,
    )
    return _store_reference(actor=actor, reference=reference, action="reference.restore")


# --- done marks ----------------------------------------------------------------------------


def _done_label(policy: Policy, coder) -> str:
    return f"{coder.get_username()} done with policy {policy.number}"  # the number, not the database id


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
            label=_done_label(policy, coder),
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
        label=_done_label(policy, coder),
    )
    mark.delete()


# --- dashboards: coding search hits, the project's stop words ----------------------------------


@transaction.atomic
def code_hits(*, actor, coder, node: Node, hits: Iterable[tuple[Policy, int, int]], memo: str = "") -> tuple[int, int]:
    """Code text-search hits ``(policy, start, end)`` at ``node`` in ``coder``'s layer, in one
    transaction: one reference per clause a hit touches, each made by ``add_reference`` and so
    audited one event per reference. A hit outside every clause (a heading) cannot be coded and
    is skipped; a passage already coded there is not coded twice.

    Returns (references created, hits skipped as outside every clause).
    """
    layer = Reference.objects.filter(node=node, coder=coder, consensus=False)
    before = layer.count()
    skipped = 0
    for policy, start, end in hits:
        if not Clause.objects.filter(policy=policy, start__lt=end, end__gt=start).exists():
            skipped += 1
            continue
        add_references_for_selection(
            actor=actor, policy=policy, node=node, start=start, end=end, coder=coder, memo=memo
        )
    return layer.count() - before, skipped


@transaction.atomic
def set_project_stopwords(*, actor, project: Project, words: Iterable[str] | None) -> Project:
    """Store the project's stop-word list (words are stripped, de-duplicated case-insensitively,
    kept in the order given); ``None`` goes back to the default list."""
    cleaned: list[str] | None = None
    if words is not None:
        seen: set[str] = set()
        cleaned = []
        for word in (w.strip() for w in words):
            if word and word.lower() not in seen:
                seen.add(word.lower())
                cleaned.append(word)
        if any(len(word) > 100 for word in cleaned):
            raise ValidationError("A stop word is at most 100 characters; put one word per line.")
    before = {"stopwords": project.stopwords}
    project.stopwords = cleaned
    project.save(update_fields=["stopwords"])
    record_event(
        actor=actor,
        project=project,
        action="project.stopwords",
        target=project,
        before=before,
        after={"stopwords": cleaned},
    )
    return project


# --- policy import (coding/importing.py reads; these check and write) ----------------------

IMPORT_BATCH = 500  # policies per INSERT batch; clauses and events go in larger batches
Progress = Callable[[str, int, int], None]
ImportSteps = Generator[tuple[str, int, int], None, Any]


@dataclass
class PlannedPolicy:
    """One row of an import as it will be written: its number, create or update, its clauses."""

    row: PolicyRow
    number: int
    action: str  # "create" or "update"
    clauses: tuple[Span, ...] | None = None  # None: the row brings no text
    rule_used: str = ""
    message: str = ""

    @property
    def clause_count(self) -> int | None:
        return None if self.clauses is None else len(self.clauses)


@dataclass
class PolicyImportPlan:
    """What an import would do, and every problem that stops it."""

    rule: str
    update: bool
    items: list[PlannedPolicy]
    problems: list[Problem]
    notices: list[str]

    def summary(self, *, limit: int | None = None) -> dict[str, Any]:
        """The preview as JSON-ready data: counts, detected encodings and, per policy, its
        clause count under the chosen rule (the first ``limit`` policies)."""
        with_text = [item for item in self.items if item.clauses is not None]
        encodings = Counter(item.row.encoding for item in with_text if item.row.encoding)
        rows = [
            {
                "number": item.number,
                "title": item.row.title,
                "action": item.action,
                "clauses": item.clause_count,
                "rule_used": item.rule_used,
                "message": item.message,
                "encoding": item.row.encoding if item.clauses is not None else "",
                "source": item.row.text_file or item.row.source,
                "row": item.row.row,
            }
            for item in self.items[:limit]
        ]
        return {
            "rule": self.rule,
            "update": self.update,
            "policies": len(self.items),
            "creates": sum(1 for item in self.items if item.action == "create"),
            "updates": sum(1 for item in self.items if item.action == "update"),
            "with_text": len(with_text),
            "clauses": sum(len(item.clauses or ()) for item in self.items),
            "encodings": dict(encodings.most_common()),
            "rows": rows,
            "notices": list(self.notices),
            "problems": [str(problem) for problem in self.problems],
        }


class ImportRefused(ValidationError):
    """An import that cannot go ahead; ``problems`` locates each reason. Nothing was written."""

    def __init__(self, problems: list[Problem]):
        super().__init__([str(problem) for problem in problems])
        self.problems = problems


@dataclass
class ImportResult:
    created: list[int] = dc_field(default_factory=list)  # policy numbers
    updated: list[int] = dc_field(default_factory=list)
    unchanged: list[int] = dc_field(default_factory=list)
    clauses: int = 0


_ROW_FIELDS = (
    "title",
    "potency_level",
    "jurisdiction",
    "release_date",
    "implementation_date",
    "source_url",
    "language",
)


def _row_problems(row: PolicyRow) -> list[Problem]:
    """The model's own field checks (lengths, URL, dates), located at the row's columns."""
    problems = []
    values = dict(row.fields, title=row.title)
    for name in _ROW_FIELDS:
        value = values.get(name)
        if not value:
            continue
        try:
            Policy._meta.get_field(name).clean(value, None)
        except ValidationError as exc:
            shown = f"{value!r}: " if len(str(value)) <= 80 else ""
            problems.append(row.problem(shown + " ".join(exc.messages), name))
    return problems


def _plan_steps(*, project: Project, parsed: ParsedImport, rule: str, update: bool) -> ImportSteps:
    problems = list(parsed.problems)
    items: list[PlannedPolicy] = []
    if rule not in RULES:
        problems.append(Problem("", f"{rule!r} is not a segmentation rule; use one of {', '.join(RULES)}"))
        return PolicyImportPlan(rule, update, items, problems, list(parsed.notices))
    existing = dict(Policy.objects.filter(project=project).values_list("number", "pk"))
    coded = {}
    if update:
        coded = dict(
            Reference.objects.filter(policy__project=project)
            .values("policy__number")
            .annotate(n=Count("id"))
            .values_list("policy__number", "n")
        )
    next_number = max([0, *existing, *(row.number for row in parsed.rows if row.number)]) + 1
    total = len(parsed.rows)
    for index, row in enumerate(parsed.rows, start=1):
        row_problems = _row_problems(row)
        number = row.number
        if update:
            if number not in existing:
                row_problems.append(
                    row.problem(
                        f"policy {number} does not exist in this project; --update changes existing policies only",
                        "number",
                    )
                )
        elif number is None:
            number, next_number = next_number, next_number + 1
        elif number in existing:
            row_problems.append(
                row.problem(f"{number} already exists in this project (use --update to change it)", "number")
            )
        item = PlannedPolicy(row=row, number=number or 0, action="update" if update else "create")
        if row.text is not None:
            column = "file" if row.text_file and row.row is not None else "text"
            if not row.text.strip():
                row_problems.append(row.problem("the text is empty", column))
            elif update and coded.get(number):
                row_problems.append(
                    row.problem(
                        f"policy {number} already has {coded[number]} reference(s); replacing its text would "
                        "move them off their text (delete or export the references first)",
                        column,
                    )
                )
            else:
                result = segment(row.text, rule)
                item.clauses, item.rule_used, item.message = result.clauses, result.rule_used, result.message
        problems += row_problems
        items.append(item)
        if index % 100 == 0 or index == total:
            yield ("check", index, total)
    if not parsed.rows and not problems:
        problems.append(Problem(parsed.label, "there is nothing to import: no policies were found"))
    return PolicyImportPlan(rule, update, items, problems, list(parsed.notices))


def _drive(steps: ImportSteps, progress: Progress | None) -> Any:
    while True:
        try:
            stage, done, total = next(steps)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(stage, done, total)


def plan_policy_import(
    *,
    project: Project,
    parsed: ParsedImport,
    rule: str = "article",
    update: bool = False,
    progress: Progress | None = None,
) -> PolicyImportPlan:
    """Check rows read by ``coding.importing`` against ``project`` without writing anything:
    numbers (free, or existing under ``update``), field lengths, URLs and dates, and, under
    ``update``, texts that would replace coded ones. Segments every text under ``rule``
    for the preview. Used by ``--dry-run``, the web preview and ``import_policies``."""
    return _drive(_plan_steps(project=project, parsed=parsed, rule=rule, update=update), progress)


def _import_note(item: PlannedPolicy) -> dict[str, Any]:
    note: dict[str, Any] = {"source": item.row.text_file or item.row.source}
    if item.row.row is not None:
        note["row"] = item.row.row
    if item.clauses is not None:
        note |= {"clauses": len(item.clauses), "encoding": item.row.encoding}
        if item.message:
            note["segmentation_message"] = item.message
    return note


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_UPDATED_FIELDS = [*POLICY_FIELDS[1:], "text", "updated_at"]


def _insert_clauses(rows: list[tuple[int, int, int, int]]) -> None:
    """Insert ``(policy_id, number, start, end)`` rows: COPY on PostgreSQL, else 1,000 to a statement.

    An import of 10^4 policies writes ~10^5-10^6 clauses; building a model instance for each
    took longer than the database did. The database still checks every row (constraints and
    the triggers of migration 0002), and clauses have no other columns or defaults.
    """
    meta = Clause._meta
    names = ("policy", "number", "start", "end")
    columns = ", ".join(connection.ops.quote_name(meta.get_field(name).column) for name in names)
    table = connection.ops.quote_name(meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY skips quoting millions of parameters into SQL text; row triggers still fire.
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        for batch in _batches(rows, 1000):
            values = ", ".join(["(%s, %s, %s, %s)"] * len(batch))
            # Table and column names come from the model; the values are parameters.
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {values}",  # noqa: S608
                [value for row in batch for value in row],
            )


def _write_import(*, actor, project: Project, plan: PolicyImportPlan) -> ImportSteps:
    result = ImportResult()
    events: list[Event] = []
    total, done = len(plan.items), 0
    for batch in _batches([item for item in plan.items if item.action == "create"], IMPORT_BATCH):
        policies = [
            Policy(
                project=project,
                number=item.number,
                title=item.row.title,
                text=item.row.text or "",
                segmentation_rule=item.rule_used,
                attributes=item.row.attributes,
                **item.row.fields,
            )
            for item in batch
        ]
        Policy.objects.bulk_create(policies)
        clauses = [
            (policy.pk, span.number, span.start, span.end)
            for policy, item in zip(policies, batch, strict=True)
            for span in item.clauses or ()
        ]
        _insert_clauses(clauses)
        for policy, item in zip(policies, batch, strict=True):
            after = _policy_snapshot(policy) | _import_note(item)
            events.append(
                _unsaved_event(actor=actor, project=project, action="policy.create", target=policy, after=after)
            )
        result.created += [policy.number for policy in policies]
        result.clauses += len(clauses)
        done += len(batch)
        yield ("write", done, total)

    now = timezone.now()
    for batch in _batches([item for item in plan.items if item.action == "update"], IMPORT_BATCH):
        current = {p.number: p for p in Policy.objects.filter(project=project, number__in=[i.number for i in batch])}
        counts = dict(
            Clause.objects.filter(policy__project=project, policy__number__in=list(current))
            .values("policy_id")
            .annotate(n=Count("id"))
            .values_list("policy_id", "n")
        )
        changed, resegmented, clauses = [], [], []
        for item in batch:
            policy = current[item.number]
            before = _policy_snapshot(policy) | {"clauses": counts.get(policy.pk, 0)}
            old_text, old_rule = policy.text, policy.segmentation_rule
            for name, value in item.row.fields.items():
                setattr(policy, name, value)
            if item.row.title:
                policy.title = item.row.title
            if item.row.attributes:
                policy.attributes = policy.attributes | item.row.attributes
            new_clauses = item.clauses is not None and (item.row.text != old_text or item.rule_used != old_rule)
            if new_clauses:
                policy.text, policy.segmentation_rule = item.row.text, item.rule_used
            after = _policy_snapshot(policy) | {"clauses": len(item.clauses) if new_clauses else before["clauses"]}
            if after == before and not new_clauses:
                result.unchanged.append(policy.number)
                continue
            policy.updated_at = now
            changed.append(policy)
            if new_clauses:
                resegmented.append(policy.pk)
                clauses += [(policy.pk, span.number, span.start, span.end) for span in item.clauses]
            events.append(
                _unsaved_event(
                    actor=actor,
                    project=project,
                    action="policy.update",
                    target=policy,
                    before=before,
                    after=after | _import_note(item),
                )
            )
            result.updated.append(policy.number)
        # Old clauses go before the text changes: the database refuses a text shorter than its clauses.
        Clause.objects.filter(policy_id__in=resegmented).delete()
        Policy.objects.bulk_update(changed, _UPDATED_FIELDS, batch_size=100)
        _insert_clauses(clauses)
        result.clauses += len(clauses)
        done += len(batch)
        yield ("write", done, total)
    Event.objects.bulk_create(events, batch_size=1000)
    return result


def import_policies_iter(
    *,
    actor,
    project: Project,
    parsed: ParsedImport,
    rule: str = "article",
    update: bool = False,
    upload: ImportUpload | None = None,
) -> ImportSteps:
    """``import_policies`` as a generator, for callers that show progress while it runs
    (the import page streams it): yields ``(stage, done, total)`` with stage "check" or
    "write", and returns the ``ImportResult``. Everything happens in one transaction that
    commits when the generator finishes; closing it early or an error rolls it all back."""
    with transaction.atomic():
        # Imports into one project wait for each other, so two cannot take the same numbers.
        list(Project.objects.select_for_update().filter(pk=project.pk).values_list("pk"))
        if upload is not None:
            status = ImportUpload.objects.filter(pk=upload.pk).values_list("status", flat=True).first()
            if status != ImportUpload.Status.PENDING:
                raise ImportRefused([Problem(upload.name, "this upload was imported already (or withdrawn)")])
        plan = yield from _plan_steps(project=project, parsed=parsed, rule=rule, update=update)
        if plan.problems:
            raise ImportRefused(plan.problems)
        try:
            result = yield from _write_import(actor=actor, project=project, plan=plan)
        except IntegrityError as exc:
            # The checks above ran under the project lock, so this is a rule only the database
            # knows (a trigger, a constraint added later); say so rather than fail with a 500.
            raise ImportRefused([Problem(parsed.label, f"the database refused the import ({exc})")]) from exc
        if upload is not None:
            upload.status = ImportUpload.Status.IMPORTED
            upload.imported_at = timezone.now()
            upload.data = b""  # the policies hold the text now; keep the bookkeeping, not the bytes
            upload.summary = upload.summary | {
                "result": {"created": len(result.created), "updated": len(result.updated), "clauses": result.clauses}
            }
            upload.save(update_fields=["status", "imported_at", "data", "summary"])
    return result


def import_policies(
    *,
    actor,
    project: Project,
    parsed: ParsedImport,
    rule: str = "article",
    update: bool = False,
    progress: Progress | None = None,
    upload: ImportUpload | None = None,
) -> ImportResult:
    """Create the policies read by ``coding.importing`` (or, with ``update``, change the
    existing ones with the same numbers), segmenting each text under ``rule``.

    All or nothing, in one transaction: any problem (from reading, or found by
    ``plan_policy_import``) raises ``ImportRefused`` listing them all, and nothing is
    written. Policies, clauses and audit events are inserted in batches (no query per
    clause or per event); one ``policy.create``/``policy.update`` event per policy that
    changed. ``progress(stage, done, total)`` is called as batches go by.
    """
    steps = import_policies_iter(actor=actor, project=project, parsed=parsed, rule=rule, update=update, upload=upload)
    return _drive(steps, progress)


@transaction.atomic
def store_import_upload(
    *, actor, project: Project, name: str, data: bytes, rule: str, update: bool, summary: Mapping[str, Any]
) -> ImportUpload:
    """Keep an uploaded file until its preview is confirmed; replaces the uploader's pending one."""
    replaced, _ = ImportUpload.objects.filter(
        project=project, uploaded_by=actor, status=ImportUpload.Status.PENDING
    ).delete()
    upload = ImportUpload.objects.create(
        project=project,
        uploaded_by=actor,
        name=name[:255],
        data=data,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        rule=rule,
        update=update,
        summary=dict(summary),
    )
    after = {"name": upload.name, "size": upload.size, "sha256": upload.sha256, "rule": rule, "update": update}
    record_event(
        actor=actor,
        project=project,
        action="import.upload",
        target=upload,
        after=after | {"policies": summary.get("policies"), "replaced_pending": replaced},
    )
    return upload


# --- clause review -------------------------------------------------------------------------


def _clause_label(clause: Clause) -> str:
    return clause.label_for(clause.policy)


@transaction.atomic
def split_clause(*, actor, clause: Clause, at: int) -> Clause:
    """Split ``clause`` at code-point offset ``at`` of the policy text; returns the new
    second part.

    The first part keeps the clause's number and the second takes the next one; clauses
    after it move up by one, so numbers stay unique and in text order. Whitespace at the
    cut belongs to neither part. Refused once the policy has references, since clause
    review comes before coding.
    """
    policy = clause.policy
    _refuse_if_coded(policy, "splitting a clause")
    label = _clause_label(clause)
    if not clause.start < at < clause.end:
        raise ValidationError(
            f"Clause {label} spans [{clause.start}, {clause.end}); split it at an offset strictly inside that."
        )
    text = policy.text
    first_end = clause.start + len(text[clause.start : at].rstrip())
    second_start = clause.end - len(text[at : clause.end].lstrip())
    if first_end <= clause.start or second_start >= clause.end:
        raise ValidationError(f"Splitting clause {label} there would leave a part with no text.")
    # Numbers are unique per policy and the database checks every row as it changes, so the
    # later clauses go through numbers no clause has before they land one higher.
    highest = Clause.objects.filter(policy=policy).aggregate(m=Max("number"))["m"]
    later = Clause.objects.filter(policy=policy, number__gt=clause.number)
    renumbered = later.update(number=F("number") + highest + 1)
    Clause.objects.filter(policy=policy, number__gt=highest).update(number=F("number") - highest)
    before = {"number": clause.number, "start": clause.start, "end": clause.end}
    second = Clause.objects.create(policy=policy, number=clause.number + 1, start=second_start, end=clause.end)
    clause.end = first_end
    clause.save(update_fields=["end"])
    record_event(
        actor=actor,
        project=policy.project,
        action="clause.split",
        target=clause,
        before=before,
        after={
            "first": {"number": clause.number, "start": clause.start, "end": clause.end},
            "second": {"number": second.number, "start": second.start, "end": second.end},
            "renumbered": renumbered,
        },
        label=label,
    )
    return second


@transaction.atomic
def merge_clauses(*, actor, clause: Clause) -> Clause:
    """Merge ``clause`` with the clause that follows it in the text (and anything between
    them, such as a heading). The merged clause keeps the first number; later clauses keep
    theirs, so the document's own article numbers stay as they were. Refused once the
    policy has references."""
    policy = clause.policy
    label = _clause_label(clause)
    following = Clause.objects.filter(policy=policy, start__gte=clause.end).order_by("start").first()
    if following is None:
        raise ValidationError(f"Clause {label} is the last clause; there is none after it to merge with.")
    _refuse_if_coded(policy, "merging clauses")
    before = {
        "first": {"number": clause.number, "start": clause.start, "end": clause.end},
        "second": {"number": following.number, "start": following.start, "end": following.end},
    }
    end = following.end
    following.delete()
    clause.end = end
    clause.save(update_fields=["end"])
    record_event(
        actor=actor,
        project=policy.project,
        action="clause.merge",
        target=clause,
        before=before,
        after={"number": clause.number, "start": clause.start, "end": clause.end},
        label=label,
    )
    return clause


# --- codebook editing and import -----------------------------------------------------------


@transaction.atomic
def move_node(*, actor, node: Node, parent: Node | None) -> Node:
    """Move ``node`` (with its sub-nodes) under ``parent`` (None: to the top level), last
    among its new siblings."""
    if (parent.pk if parent else None) == node.parent_id:
        return node
    last = Node.objects.filter(project=node.project_id, parent=parent).aggregate(m=Max("position"))["m"] or 0
    return update_node(actor=actor, node=node, parent=parent, position=last + 1)


@transaction.atomic
def reorder_node(*, actor, node: Node, offset: int) -> Node:
    """Move ``node`` ``offset`` places among its siblings (-1: up one, 1: down one).

    Siblings are renumbered 1..n in their current order first, since nodes created without
    a position all share 0. One audit event, for the node that moved.
    """
    siblings = list(Node.objects.filter(project=node.project_id, parent=node.parent_id).order_by("position", "id"))
    index = next(i for i, sibling in enumerate(siblings) if sibling.pk == node.pk)
    target = min(max(index + offset, 0), len(siblings) - 1)
    if target == index:
        return node
    siblings.insert(target, siblings.pop(index))
    for position, sibling in enumerate(siblings, start=1):
        sibling.position = position
    Node.objects.bulk_update(siblings, ["position"])
    record_event(
        actor=actor,
        project=node.project,
        action="node.reorder",
        target=node,
        before={"index": index + 1, "of": len(siblings)},
        after={"index": target + 1, "of": len(siblings)},
    )
    node.position = siblings[target].position
    return node


@dataclass
class CodebookImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


@transaction.atomic
def import_codebook(
    *, actor, project: Project, entries: Sequence[CodebookEntry], source: str = ""
) -> CodebookImportResult:
    """Add the nodes of ``entries`` (paths from the top, in file order) to the codebook:
    a path it lacks is created (with any missing ancestors), a path it has gets the
    description, colour and shortcut the entry gives. All or nothing: problems raise
    ``ImportRefused`` naming each entry's row, and nothing is written. One audit event per
    node created or changed."""
    by_path: dict[tuple[str, ...], Node] = {}
    nodes = list(Node.objects.filter(project=project).order_by("position", "id"))
    by_id = {node.pk: node for node in nodes}

    def path_of(node: Node) -> tuple[str, ...]:
        names = []
        current: Node | None = node
        while current is not None:
            names.append(current.name)
            current = by_id.get(current.parent_id) if current.parent_id else None
        return tuple(reversed(names))

    for node in nodes:
        by_path[path_of(node)] = node
    result = CodebookImportResult()
    problems: list[Problem] = []
    for entry in entries:
        parent: Node | None = None
        for depth in range(len(entry.path)):
            key = entry.path[: depth + 1]
            leaf = depth == len(entry.path) - 1
            node = by_path.get(key)
            try:
                if node is None:
                    node = add_node(
                        actor=actor,
                        project=project,
                        parent=parent,
                        name=key[-1],
                        description=(entry.description or "") if leaf else "",
                        colour=(entry.colour or "#ffe08a") if leaf else "#ffe08a",
                        shortcut=(entry.shortcut or "") if leaf else "",
                    )
                    by_path[key] = node
                    result.created += 1
                elif leaf:
                    changes = {
                        name: value
                        for name, value in (
                            ("description", entry.description),
                            ("colour", entry.colour),
                            ("shortcut", entry.shortcut),
                        )
                        if value is not None and getattr(node, name) != value
                    }
                    if changes:
                        update_node(actor=actor, node=node, **changes)
                        result.updated += 1
                    else:
                        result.unchanged += 1
            except ValidationError as exc:
                problems.append(Problem(source, " ".join(exc.messages), entry.row, None, entry.row_label))
                break
            parent = node
    if problems:
        raise ImportRefused(problems)
    return result


# --- members -------------------------------------------------------------------------------


def _check_admin_remains(membership: Membership, new_role: str | None) -> None:
    if membership.role != Role.ADMIN or new_role == Role.ADMIN:
        return
    others = Membership.objects.filter(project=membership.project_id, role=Role.ADMIN).exclude(pk=membership.pk)
    if not others.exists():
        raise ValidationError(
            f"{membership.user.get_username()} is the project's only admin; make someone else admin first."
        )


@transaction.atomic
def add_member(*, actor, project: Project, username: str, role: str) -> tuple[Membership, str]:
    """Give the existing user ``username`` ``role`` in ``project``: adds them, or changes
    the role of a member. Returns the membership and "added", "changed" or "unchanged"."""
    user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: username.strip()}).first()
    if user is None:
        raise ValidationError(
            {"username": f"There is no user {username.strip()!r}; a site administrator creates users."}
        )
    current = Membership.objects.filter(project=project, user=user).first()
    if current is not None:
        if current.role == role:
            return current, "unchanged"
        _check_admin_remains(current, role)
    membership = set_membership(actor=actor, project=project, user=user, role=role)
    return membership, "added" if current is None else "changed"


@transaction.atomic
def change_member_role(*, actor, membership: Membership, role: str) -> Membership:
    """Change a member's role; a project keeps at least one admin."""
    _check_admin_remains(membership, role)
    return set_membership(actor=actor, project=membership.project, user=membership.user, role=role)


@transaction.atomic
def remove_member(*, actor, membership: Membership) -> None:
    """Take a member out of the project; their references stay, still attributed to them.
    A project keeps at least one admin."""
    _check_admin_remains(membership, None)
    remove_membership(actor=actor, membership=membership)


# --- adjudication (the consensus layer) ------------------------------------------------------


def _adjudication_node_ids(node: Node, scope: str) -> list[int]:
    return _subtree_ids(node) if scope == Adjudication.Scope.SUBTREE else [node.pk]


def _check_adjudication(clause: Clause, node: Node, scope: str) -> None:
    if scope not in Adjudication.Scope.values:
        raise ValidationError(
            {"scope": f"{scope!r} is not a scope; use one of {', '.join(Adjudication.Scope.values)}."}
        )
    if node.project_id != clause.policy.project_id:
        raise ValidationError({"node": "The node belongs to another project than the clause."})


def _adjudication_snapshot(adjudication: Adjudication) -> dict[str, Any]:
    coder = adjudication.accepted_coder
    return {
        "clause_id": adjudication.clause_id,
        "node_id": adjudication.node_id,
        "scope": adjudication.scope,
        "decision": adjudication.decision,
        "accepted_coder": coder.get_username() if coder else None,
    }


def _record_adjudication(
    *, actor, clause: Clause, node: Node, scope: str, decision: str, accepted=None
) -> Adjudication:
    """Create or change the decision row; one Event when something changed, none otherwise."""
    policy = clause.policy
    label = f"{clause.label_for(policy)} {node.name}"
    current = Adjudication.objects.select_for_update().filter(clause=clause, node=node, scope=scope).first()
    if current is None:
        try:
            with transaction.atomic():
                adjudication = Adjudication.objects.create(
                    project_id=policy.project_id,
                    clause=clause,
                    node=node,
                    scope=scope,
                    decision=decision,
                    accepted_coder=accepted,
                    decided_by=actor,
                    decided_at=timezone.now(),
                )
        except IntegrityError:
            # Another reviewer decided the same disagreement a moment ago: this decision changes theirs.
            current = Adjudication.objects.select_for_update().get(clause=clause, node=node, scope=scope)
        else:
            record_event(
                actor=actor,
                project=policy.project,
                action="adjudication.create",
                target=adjudication,
                after=_adjudication_snapshot(adjudication),
                label=label,
            )
            return adjudication
    if current.decision == decision and current.accepted_coder_id == getattr(accepted, "pk", None):
        return current
    before = _adjudication_snapshot(current)
    current.decision, current.accepted_coder = decision, accepted
    current.decided_by, current.decided_at = actor, timezone.now()
    current.save()
    record_event(
        actor=actor,
        project=policy.project,
        action="adjudication.update",
        target=current,
        before=before,
        after=_adjudication_snapshot(current),
        label=label,
    )
    return current


@transaction.atomic
def adjudicate(
    *, actor, clause: Clause, node: Node, scope: str, decision: str, coders: Sequence, accepted=None
) -> Adjudication:
    """Decide one disagreement: what the consensus layer holds for ``node`` in ``clause``.

    ``coders`` are the compared coders (users); ``decision`` is ``accept`` (the references
    of ``accepted``, one of ``coders``), ``both`` (every compared coder's references, an
    identical passage once) or ``neither`` (nothing). With ``scope`` ``subtree`` the node
    stands for itself and its sub-nodes (a tree-node disagreement). The consensus
    references of those nodes in the clause become exactly the chosen passages: missing
    ones are added (keeping the coder's memo), the others deleted, each change one audit
    Event attributed to ``actor``; then the decision is recorded, also for ``neither``, so
    that progress counts the disagreement as resolved. Deciding the same again changes
    nothing. Coding anew is ``code_consensus_anew``.
    """
    _check_adjudication(clause, node, scope)
    choices = (Adjudication.Decision.ACCEPT, Adjudication.Decision.BOTH, Adjudication.Decision.NEITHER)
    if decision not in choices:
        raise ValidationError({"decision": f"{decision!r} is not a decision here; use one of {', '.join(choices)}."})
    coders = list(coders)
    if not coders:
        raise ValidationError("Name the coders whose disagreement this decides.")
    for coder in coders:
        _check_coder(clause.policy.project, coder)
    if decision == Adjudication.Decision.ACCEPT:
        if accepted is None or accepted.pk not in {c.pk for c in coders}:
            raise ValidationError({"accepted": "Accept the coding of one of the compared coders."})
        sources = [accepted]
    else:
        accepted = None
        sources = coders if decision == Adjudication.Decision.BOTH else []
    node_ids = _adjudication_node_ids(node, scope)
    wanted: dict[tuple[int, int, int], str] = {}
    chosen = Reference.objects.filter(
        clause=clause, node_id__in=node_ids, consensus=False, coder__in=[c.pk for c in sources]
    ).order_by("start", "end", "id")
    for node_id, start, end, memo in chosen.values_list("node_id", "start", "end", "memo"):
        wanted.setdefault((node_id, start, end), memo)
    current = list(
        Reference.objects.select_for_update().filter(clause=clause, node_id__in=node_ids, consensus=True).order_by("id")
    )
    have = set()
    for reference in current:
        key = (reference.node_id, reference.start, reference.end)
        if key in wanted:
            have.add(key)
        else:
            delete_reference(actor=actor, reference=reference)
    nodes = Node.objects.in_bulk([key[0] for key in wanted])
    for (node_id, start, end), memo in wanted.items():
        if (node_id, start, end) not in have:
            add_reference(
                actor=actor, clause=clause, node=nodes[node_id], start=start, end=end, consensus=True, memo=memo
            )
    return _record_adjudication(
        actor=actor, clause=clause, node=node, scope=scope, decision=decision, accepted=accepted
    )


@transaction.atomic
def code_consensus_anew(
    *, actor, clause: Clause, node: Node, scope: str, code_node: Node, start: int, end: int, memo: str = ""
) -> Adjudication:
    """Resolve a disagreement by coding ``[start, end)`` of ``clause`` at ``code_node`` in the
    consensus layer, as the supervisor reads it (``code_node`` is ``node`` or, with scope
    ``subtree``, one of its sub-nodes). Adds to what the consensus already holds there; use
    ``adjudicate(decision="neither")`` first to start from nothing. One Event for the new
    reference and one when the decision changes to ``anew``.
    """
    _check_adjudication(clause, node, scope)
    if code_node.pk not in _adjudication_node_ids(node, scope):
        where = "or one of its sub-nodes" if scope == Adjudication.Scope.SUBTREE else "itself"
        raise ValidationError(
            {"code_node": f"Code this disagreement at {node.name!r} {where}, not at {code_node.name!r}."}
        )
    add_reference(actor=actor, clause=clause, node=code_node, start=start, end=end, consensus=True, memo=memo)
    return _record_adjudication(actor=actor, clause=clause, node=node, scope=scope, decision=Adjudication.Decision.ANEW)


ADOPT_BATCH = 500  # clauses per query: well under SQLite's limit on query parameters


@transaction.atomic
def adopt_agreed_coding(
    *, actor, project: Project, units: Iterable[tuple[int, int]], scope: str, coders: Sequence
) -> int:
    """Copy into the consensus layer the coding every compared coder agrees on.

    ``units`` are (clause id, node id) pairs of ``project`` where each of ``coders`` applied
    the node (with ``scope`` ``subtree``: the node or one of its sub-nodes) to the clause.
    The first coder's passages there become consensus references (memo kept), each one
    audit Event attributed to ``actor``. A unit already adjudicated, or where the consensus
    already holds coding of the node, is left as it is, so running this again adds nothing.
    Returns the number of references added. A unit where the coders do not all agree is
    refused with ValidationError, and nothing is changed.
    """
    if scope not in Adjudication.Scope.values:
        raise ValidationError(
            {"scope": f"{scope!r} is not a scope; use one of {', '.join(Adjudication.Scope.values)}."}
        )
    coders = list(coders)
    if len(coders) < 2:
        raise ValidationError("Agreement needs two or more coders.")
    for coder in coders:
        _check_coder(project, coder)
    children: dict[int | None, list[int]] = {}
    nodes = {}
    for node in Node.objects.filter(project=project):
        nodes[node.pk] = node
        children.setdefault(node.parent_id, []).append(node.pk)

    def in_scope(node_id: int) -> set[int]:
        ids, stack = {node_id}, [node_id]
        while scope == Adjudication.Scope.SUBTREE and stack:
            for child in children.get(stack.pop(), []):
                ids.add(child)
                stack.append(child)
        return ids

    wanted: dict[int, list[int]] = {}
    for clause_id, node_id in units:
        if node_id not in nodes:
            raise ValidationError({"node": "The node belongs to another project."})
        wanted.setdefault(clause_id, []).append(node_id)
    coder_ids = [coder.pk for coder in coders]
    added = 0
    adopted: set[tuple[int, int, int, int]] = set()
    clause_ids = sorted(wanted)
    for i in range(0, len(clause_ids), ADOPT_BATCH):
        batch = clause_ids[i : i + ADOPT_BATCH]
        new: list[Reference] = []
        clauses = Clause.objects.select_related("policy__project").filter(pk__in=batch, policy__project=project)
        clauses = {clause.pk: clause for clause in clauses}
        if len(clauses) != len(batch):
            raise ValidationError("A clause belongs to another project.")
        coded: dict[tuple[int, int | None], list[Reference]] = {}
        for reference in Reference.objects.filter(
            Q(consensus=True) | Q(coder_id__in=coder_ids), clause_id__in=batch
        ).order_by("start", "end", "id"):
            coded.setdefault((reference.clause_id, reference.coder_id), []).append(reference)
        decided = set(Adjudication.objects.filter(clause_id__in=batch, scope=scope).values_list("clause_id", "node_id"))
        for clause_id in batch:
            clause = clauses[clause_id]
            for node_id in wanted[clause_id]:
                ids = in_scope(node_id)
                passages = [[r for r in coded.get((clause_id, pk), []) if r.node_id in ids] for pk in coder_ids]
                if not all(passages):
                    label = clause.label_for(clause.policy)
                    raise ValidationError(f"The coders do not agree on {nodes[node_id].name!r} in clause {label}.")
                in_consensus = any(r.node_id in ids for r in coded.get((clause_id, None), []))
                if (clause_id, node_id) in decided or in_consensus:
                    continue
                for reference in passages[0]:
                    key = (clause_id, reference.node_id, reference.start, reference.end)
                    if key in adopted:  # a unit and its parent's subtree can name one passage
                        continue
                    adopted.add(key)
                    new.append(
                        Reference(
                            policy=clause.policy,
                            clause=clause,
                            node=nodes[reference.node_id],
                            consensus=True,
                            created_by=actor,
                            start=reference.start,
                            end=reference.end,
                            text=clause.policy.text[reference.start : reference.end],
                            memo=reference.memo,
                        )
                    )
        for reference in new:
            _validate(reference, exclude=REFERENCE_RELATIONS)
        # One INSERT for the references and one for their audit rows per batch (the
        # database's triggers still check each row); a reference per query took minutes
        # for a large study.
        try:
            with transaction.atomic():
                Reference.objects.bulk_create(new)
        except IntegrityError:  # someone coded one of these passages in the consensus meanwhile
            raise ValidationError(
                "The consensus layer changed while the agreed coding was being copied (another supervisor "
                "at work?); nothing was copied. Copy it again."
            ) from None
        Event.objects.bulk_create(
            _unsaved_event(
                actor=actor,
                project=project,
                action="reference.create",
                target=reference,
                after=_reference_snapshot(reference),
                label=reference.clause.label_for(reference.clause.policy),
            )
            for reference in new
        )
        added += len(new)
    return added


# --- REFI-QDA import (coding/refi.py reads the file; this checks it against the project and writes) ---
#
# Audit: one Event per object created (user, membership, node, policy, reference), the same
# rows the one-at-a-time services write, inserted in batches because an NVivo project brings
# thousands of references; plus one "project.import" event on the project holding the whole
# import report. Existing objects an import matches (users, nodes) are not changed, except a
# member's REFI GUID when it had none (one "membership.update" each).

REFI_BATCH = 1000
_USERNAME_UNSAFE_RE = re.compile(r"[^\w.@+-]+")


def _keep_file_dates(model, rows: list[tuple], fields: Sequence[str]) -> None:
    """Give freshly inserted rows the dates their file records: ``(pk, value, ...)`` per row.

    ``auto_now_add`` overwrites dates on insert, and ``bulk_update``'s CASE expressions take
    minutes on 10^5 rows, so this is one parameterised UPDATE per row sent as one executemany.
    """
    if not rows:
        return
    connection = transaction.get_connection()
    quote = connection.ops.quote_name
    opts = model._meta
    columns = [opts.get_field(name) for name in fields]
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in columns)
    sql = f"UPDATE {quote(opts.db_table)} SET {assignments} WHERE {quote(opts.pk.column)} = %s"  # noqa: S608 - names from the model
    params = [
        [field.get_db_prep_value(value, connection) for field, value in zip(columns, values, strict=True)] + [pk]
        for pk, *values in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _free_slug(name: str) -> str:
    base = slugify(name)[:70].strip("-") or "imported"
    slug, n = base, 1
    while slug in RESERVED_SLUGS or Project.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


class _RefiImport:
    """One import of a read REFI-QDA file into one project, inside the caller's transaction."""

    def __init__(self, *, actor, project: Project, parsed: refi.FileProject, rule: str | None, report):
        self.actor = actor
        self.project = project
        self.parsed = parsed
        self.rule = rule
        self.report = report
        self.events: list[Event] = []
        self.ns = refi.project_namespace(project.slug)
        self.used_guids: set[str] = set()
        self.user_for: dict[str, Any] = {}  # file user GUID -> user, or CONSENSUS
        self.node_for: dict[str, Node] = {}
        self.fallback_user = None
        self.ambiguous_names: set[str] = set()  # file user names several candidates share

    CONSENSUS = object()

    def guid(self, wanted: str, fallback: str) -> uuid.UUID:
        """``wanted`` unless this import or the project already uses it, else a derivation."""
        chosen = wanted if wanted not in self.used_guids else refi.derive_guid(self.ns, fallback)
        self.used_guids.add(chosen)
        return uuid.UUID(chosen)

    def event(self, action: str, target, after: Mapping[str, Any], label: str = "") -> None:
        self.events.append(
            _unsaved_event(
                actor=self.actor, project=self.project, action=action, target=target, after=after, label=label
            )
        )

    def run(self) -> None:
        self.users()
        self.codes()
        policies = self.policies()
        self.references(policies)
        for batch in _refi_batches(self.events, REFI_BATCH):
            Event.objects.bulk_create(batch)

    # - users

    def users(self) -> None:
        User = get_user_model()
        members = {m.user_id: m for m in Membership.objects.filter(project=self.project).select_related("user")}
        by_guid = {str(m.refi_guid or refi.derive_guid(self.ns, f"user:{uid}")): m.user for uid, m in members.items()}
        self.used_guids |= set(by_guid)
        trust_login = self.parsed.origin.startswith("PolicyCoder")
        report = self.report
        for file_user in self.parsed.users:
            if file_user.consensus:
                self.user_for[file_user.guid] = self.CONSENSUS
                continue
            report.users += 1
            user = by_guid.get(file_user.guid) or self.match_user(User, file_user, trust_login)
            if user is None:
                user = self.create_user(User, file_user.name)
                ambiguous = file_user.name in self.ambiguous_names  # match_user said so already
                if getattr(self.actor, "pk", None) and not self.actor.is_superuser and not ambiguous:
                    report.notes.append(
                        f"File user {file_user.name!r} is no member of this project: their codings are in the "
                        f"layer of a new inactive user {user.get_username()!r}. Add coders as members before "
                        "importing to have their coding land in their own layer."
                    )
            else:
                report.users_matched += 1
            self.user_for[file_user.guid] = user
            membership = members.get(user.pk)
            current = membership and str(membership.refi_guid or refi.derive_guid(self.ns, f"user:{user.pk}"))
            if membership is None:
                membership = Membership.objects.create(
                    project=self.project,
                    user=user,
                    role=Role.CODER,
                    refi_guid=self.guid(file_user.guid, f"membership-of:{file_user.guid}"),
                )
                members[user.pk] = membership
                self.event(
                    "membership.create",
                    membership,
                    {"user": user.get_username(), "role": Role.CODER, "refi_guid": str(membership.refi_guid)},
                )
            elif current == file_user.guid:
                pass
            elif membership.refi_guid is None and file_user.guid not in self.used_guids:
                membership.refi_guid = self.guid(file_user.guid, f"membership-of:{file_user.guid}")
                membership.save(update_fields=["refi_guid"])
                self.event("membership.update", membership, {"refi_guid": str(membership.refi_guid)})
            else:
                report.notes.append(
                    f"File user {file_user.name!r} is {user.get_username()!r} here, who is known by another GUID; "
                    "their codings are in that user's layer."
                )

    def match_user(self, User, file_user: refi.FileUser, trust_login: bool):
        """An existing user by the file's ``id`` (our own exports write the username there),
        then by name as a username, then by name as a full name; None when none or several.

        A project admin matches only the project's members: matching any account of the site
        by name would let them put coding (and a membership) in the name of someone who never
        joined the project. The site's operators (the command line, superusers) match every
        user."""
        candidates = User.objects.all()
        if getattr(self.actor, "pk", None) and not self.actor.is_superuser:
            candidates = candidates.filter(memberships__project=self.project)
        if trust_login and file_user.login:
            user = candidates.filter(**{User.USERNAME_FIELD: file_user.login}).first()
            if user is not None:
                return user
        name = file_user.name
        found = list(candidates.filter(**{f"{User.USERNAME_FIELD}__iexact": name})[:2])
        if len(found) != 1:
            full_name = Q(first_name__iexact=name, last_name="")
            for i, char in enumerate(name):
                if char == " ":
                    full_name |= Q(first_name__iexact=name[:i], last_name__iexact=name[i + 1 :])
            found = found or list(candidates.filter(full_name)[:2])
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            self.ambiguous_names.add(name)
            self.report.notes.append(f"Several users are called {name!r}; a new user was created instead.")
        return None

    def create_user(self, User, name: str):
        base = _USERNAME_UNSAFE_RE.sub("_", name).strip("_")[:140] or "imported"
        username, n = base, 1
        while User.objects.filter(**{User.USERNAME_FIELD: username}).exists():
            n += 1
            username = f"{base}-{n}"
        user = User(**{User.USERNAME_FIELD: username}, first_name=name[:150], is_active=False)
        user.set_unusable_password()
        user.save()
        self.report.users_created += 1
        self.event("user.create", user, {"username": username, "name": name, "is_active": False})
        return user

    def unknown_user(self):
        if self.fallback_user is None:
            User = get_user_model()
            self.fallback_user = self.create_user(User, "Unknown coder")
            membership = Membership.objects.create(project=self.project, user=self.fallback_user, role=Role.CODER)
            self.event("membership.create", membership, {"user": self.fallback_user.get_username(), "role": Role.CODER})
            self.report.notes.append(
                f"Some codings name no user; they are in the layer of {self.fallback_user.get_username()!r}."
            )
        return self.fallback_user

    # - codebook

    def codes(self) -> None:
        existing = list(Node.objects.filter(project=self.project))
        by_guid = {str(n.refi_guid or refi.derive_guid(self.ns, f"node:{n.pk}")): n for n in existing}
        self.used_guids |= set(by_guid)
        by_name = {(n.parent_id, n.name): n for n in existing}
        next_position: dict[int | None, int] = {}
        for n in existing:
            next_position[n.parent_id] = max(next_position.get(n.parent_id, 0), n.position)
        created: set[int] = set()
        report = self.report

        def walk(codes: list[refi.FileCode], parent: Node | None) -> None:
            parent_id = parent.pk if parent else None
            for code in codes:
                report.codes += 1
                node = by_guid.get(code.guid)
                name = code.name or "(unnamed code)"
                if len(name) > 200:
                    report.notes.append(f"Code name {name[:40]!r}… is longer than 200 characters; it was cut.")
                    name = name[:199] + "…"
                if node is None:
                    same_name = by_name.get((parent_id, name))
                    if same_name is not None and same_name.pk not in created:
                        node = same_name
                    elif same_name is not None:
                        n = 2
                        while (parent_id, f"{name} ({n})") in by_name:
                            n += 1
                        report.notes.append(
                            f"Two codes are called {name!r} under the same parent; the second is {name} ({n})."
                        )
                        name = f"{name} ({n})"
                if node is not None:
                    report.nodes_matched += 1
                else:
                    next_position[parent_id] = next_position.get(parent_id, 0) + 1
                    node = Node(
                        project=self.project,
                        parent=parent,
                        name=name,
                        description=code.description,
                        colour=code.colour if re.fullmatch(r"#[0-9a-f]{6}", code.colour) else "#ffe08a",
                        position=next_position[parent_id],
                        refi_guid=self.guid(code.guid, f"code:{code.guid}"),
                    )
                    _validate(node)
                    node.save()
                    created.add(node.pk)
                    by_name[(parent_id, name)] = node
                    report.nodes_created += 1
                    self.event("node.create", node, _snapshot(node, NODE_FIELDS) | {"refi_guid": str(node.refi_guid)})
                self.node_for[code.guid] = node
                walk(code.children, node)

        walk(self.parsed.codes, None)
        not_codable = [c.name for c in self.parsed.iter_codes() if not c.codable]
        if not_codable:
            report.notes.append(
                f"{len(not_codable)} code(s) are folders in the file (isCodable=false), e.g. {not_codable[0]!r}; "
                "they are nodes here like any other."
            )

    # - policies and clauses

    def policy_fields(self, source: refi.FileSource) -> tuple[dict[str, Any], int | None]:
        """Policy fields from the source's variables; a value that does not fit its field is
        kept as a free-form attribute instead, and the report says so."""
        fields: dict[str, Any] = {"language": "", "attributes": {}}
        number = None
        for name, value in source.variables.items():
            field = refi.BUILTIN_BY_NAME.get(name.lower())
            key = name.removesuffix(refi.ATTRIBUTE_SUFFIX) if name.endswith(refi.ATTRIBUTE_SUFFIX) else name
            if field is None or name.endswith(refi.ATTRIBUTE_SUFFIX):
                fields["attributes"][key] = value
                continue
            problem = ""
            if field == "number":
                if isinstance(value, str) and value.strip().isdecimal():
                    value = int(value)
                if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
                    number = value
                else:
                    problem = "is not a positive whole number"
            elif field in ("release_date", "implementation_date"):
                try:
                    fields[field] = parse_partial_date(str(value)) or ""
                except ValueError as exc:
                    problem = str(exc)
            elif field == "release_departments":
                fields[field] = [d.strip() for d in str(value).split(";") if d.strip()]
            elif field == "segmentation_rule":
                if value in RULES:
                    fields[field] = value
                else:
                    problem = f"is not a segmentation rule ({', '.join(RULES)})"
            else:
                limit = Policy._meta.get_field(field).max_length
                text = str(value)
                if len(text) > limit:
                    problem = f"is longer than {limit} characters"
                elif field == "source_url":
                    try:
                        URLValidator()(text)
                    except ValidationError:
                        problem = "is not a URL"
                if not problem:
                    fields[field] = text
            if problem:
                fields["attributes"][name] = value
                self.report.notes.append(
                    f"Source {source.name!r}: {name} {str(value)[:60]!r} {problem}; kept as an attribute."
                )
        return fields, number

    def policies(self) -> list[tuple[refi.FileSource, Policy, list[Clause]]]:
        report = self.report
        existing = Policy.objects.filter(project=self.project).values_list("pk", "refi_guid", "number", "title")
        taken = set()
        known: dict[str, tuple[int, str]] = {}
        for pk, refi_guid, number, title in existing:
            known[str(refi_guid or refi.derive_guid(self.ns, f"policy:{pk}"))] = (number, title)
            taken.add(number)
        repeated = [s for s in self.parsed.sources if s.guid in known]
        if repeated:
            number, title = known[repeated[0].guid]
            raise ValidationError(
                f"{len(repeated)} source(s) of the file are already in this project, e.g. {repeated[0].name!r} "
                f"(policy {number}, {title!r}); importing them again would duplicate them. Import into a new project."
            )
        self.used_guids |= set(known)
        planned = []
        for source in self.parsed.sources:
            report.sources += 1
            fields, number = self.policy_fields(source)
            if number is None or number in taken:
                if number is not None:
                    report.notes.append(f"Source {source.name!r}: policy number {number} is taken; renumbered.")
                number = max(taken, default=0) + 1
            taken.add(number)
            title = source.name or f"Untitled source {source.guid[:8]}"
            if len(title) > 500:
                report.notes.append(f"Source name {title[:40]!r}… is longer than 500 characters; it was cut.")
                title = title[:499] + "…"
            rule = self.rule or fields.pop("segmentation_rule", None) or "article"
            fields.pop("segmentation_rule", None)
            policy = Policy(
                project=self.project,
                number=number,
                title=title,
                text=source.text or "",
                refi_guid=self.guid(source.guid, f"source:{source.guid}"),
                **fields,
            )
            segmentation = segment(policy.text, rule) if policy.text else None
            policy.segmentation_rule = segmentation.rule_used if segmentation else ""
            policy.full_clean(exclude=["project"], validate_unique=False, validate_constraints=False)
            planned.append((source, policy, segmentation))
            if source.text is not None and source.selections:
                report.units.append(
                    {"source": policy.title, "unit": refi.UNIT_LABELS[source.unit], "why": source.unit_reason}
                )
            if source.whole_codings:
                report.notes.append(
                    f"Source {source.name!r} is coded as a whole {source.whole_codings} time(s); PolicyCoder codes "
                    "passages, so those codings are not imported."
                )
        Policy.objects.bulk_create([policy for _, policy, _ in planned], batch_size=REFI_BATCH)
        # Before the clauses exist: the policy trigger then has nothing to check.
        dated = [(policy.pk, source.created) for source, policy, _ in planned if source.created]
        _keep_file_dates(Policy, dated, ["created_at"])
        for source, policy, _ in planned:
            policy.created_at = source.created or policy.created_at
        # Ids, not instances: the related-object descriptors cost more than the insert itself.
        clauses = [
            Clause(policy_id=policy.pk, number=span.number, start=span.start, end=span.end)
            for _, policy, segmentation in planned
            if segmentation
            for span in segmentation.clauses
        ]
        Clause.objects.bulk_create(clauses, batch_size=REFI_BATCH)
        report.policies_created = len(planned)
        report.clauses_created = len(clauses)
        by_policy: dict[int, list[Clause]] = {}
        for clause in clauses:
            by_policy.setdefault(clause.policy_id, []).append(clause)
        result = []
        for source, policy, segmentation in planned:
            after = _policy_snapshot(policy) | {
                "clauses": len(by_policy.get(policy.pk, [])),
                "refi_guid": str(policy.refi_guid),
            }
            if segmentation and segmentation.message:
                after["segmentation_message"] = segmentation.message
            self.event("policy.create", policy, after)
            result.append((source, policy, by_policy.get(policy.pk, [])))
        return result

    # - references

    def layer(self, selection: refi.FileSelection, coding: refi.FileCoding) -> tuple[Any, Any]:
        """(coder or CONSENSUS, created_by) of one coding; see coding/refi.py on layers."""
        owner = self.user_for.get(coding.user_guid or selection.user_guid or "")
        if owner is None:
            owner = self.unknown_user()
        creator = self.user_for.get(selection.user_guid or "")
        if creator is None or creator is self.CONSENSUS:
            creator = owner if owner is not self.CONSENSUS else None
        if creator is None:
            creator = self.actor if getattr(self.actor, "pk", None) else self.unknown_user()
        return owner, creator

    def references(self, policies: list[tuple[refi.FileSource, Policy, list[Clause]]]) -> None:
        report = self.report
        references: list[tuple[Reference, Any]] = []
        seen: set[tuple] = set()
        for source, policy, clauses in policies:
            clauses = sorted(clauses, key=lambda c: c.start)
            spans = [(c.start, c.end) for c in clauses]
            for selection in source.selections:
                report.selections += 1
                report.codings += len(selection.codings)
                reason = self.unplaceable(selection)
                pieces = [] if reason else refi.place(spans, selection.start, selection.end)
                if not reason and not pieces:
                    reason = "it lies outside every clause (blank text or a heading)"
                if reason:
                    report.unplaced.append(
                        {
                            "source": policy.title,
                            "selection": selection.guid,
                            "start": selection.raw_start,
                            "end": selection.raw_end,
                            "reason": reason,
                        }
                    )
                    continue
                report.selections_placed += 1
                piece_clauses = [clauses[index] for index, _, _ in pieces]
                if len(pieces) > 1:
                    report.split.append(
                        {
                            "source": policy.title,
                            "selection": selection.guid,
                            "clauses": [c.label_for(policy) for c in piece_clauses],
                        }
                    )
                outside = refi.uncovered_characters(policy.text, selection.start, selection.end, pieces)
                if outside:
                    report.trimmed.append({"source": policy.title, "selection": selection.guid, "characters": outside})
                single = len(selection.codings) == 1 and len(pieces) == 1
                for coding in selection.codings:
                    owner, creator = self.layer(selection, coding)
                    consensus = owner is self.CONSENSUS
                    node = self.node_for[coding.code_guid]
                    created = coding.created or selection.created
                    for i, ((_, start, end), clause) in enumerate(zip(pieces, piece_clauses, strict=True)):
                        key = (consensus, None if consensus else owner.pk, node.pk, clause.pk, start, end)
                        if key in seen:
                            report.duplicates += 1
                            continue
                        seen.add(key)
                        wanted = (
                            selection.guid
                            if single
                            else refi.derive_guid(refi.GUID_NS, f"{selection.guid}/{coding.guid}/{i}")
                        )
                        reference = Reference(
                            policy_id=policy.pk,
                            clause_id=clause.pk,
                            node_id=node.pk,
                            coder_id=None if consensus else owner.pk,
                            consensus=consensus,
                            created_by_id=creator.pk,
                            start=start,
                            end=end,
                            text=policy.text[start:end],
                            memo=selection.memo,
                            refi_guid=self.guid(wanted, f"reference:{selection.guid}/{coding.guid}/{i}"),
                        )
                        references.append((reference, (created, selection.modified or created)))
        rows = [reference for reference, _ in references]
        Reference.objects.bulk_create(rows, batch_size=REFI_BATCH)
        dated = [(reference.pk, created, modified) for reference, (created, modified) in references if created]
        _keep_file_dates(Reference, dated, ["created_at", "updated_at"])
        report.references_created = len(rows)
        labels = {c.pk: c.label_for(p) for _, p, clauses in policies for c in clauses}
        for reference in rows:
            self.event(
                "reference.create",
                reference,
                _reference_snapshot(reference) | {"refi_guid": str(reference.refi_guid)},
                label=labels[reference.clause_id],
            )

    @staticmethod
    def unplaceable(selection: refi.FileSelection) -> str:
        if selection.problem:
            return selection.problem
        if not selection.codings:
            return "it applies no code (a comment or annotation); PolicyCoder keeps coded passages only"
        if selection.start == selection.end:
            return "it is empty (zero length)"
        return ""


def _refi_batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@transaction.atomic
def import_refi_upload(*, actor, project: Project, data: bytes, file_name: str, rule: str | None) -> refi.ImportReport:
    """Read an uploaded REFI-QDA file and import it into ``project`` (the interchange page's and
    the API's), all or nothing. RefiError, its message ending "Nothing was imported.", for a file
    that cannot be read or imported."""
    try:
        parsed = refi.read_file(data, file_name)
        _, report = import_refi(actor=actor, parsed=parsed, project=project, rule=rule, file_name=file_name)
    except refi.RefiError as exc:
        raise refi.RefiError(f"{exc} Nothing was imported.") from None
    except ValidationError as exc:
        raise refi.RefiError(f"{' '.join(exc.messages)} Nothing was imported.") from None
    return report


def import_refi(
    *,
    actor,
    parsed: refi.FileProject,
    project: Project | None = None,
    slug: str = "",
    rule: str | None = None,
    file_name: str = "",
) -> tuple[Project, refi.ImportReport]:
    """Write what a REFI-QDA file holds (read by ``refi.read_file``) into ``project``, or
    into a new project (``slug``, or one made from the file's project name).

    Codes become nodes (matched by GUID, then by name under the same parent), users become
    coders (matched by name, or created inactive), sources become policies segmented under
    ``rule`` (default: the file's "Segmentation rule" variable, else ``article``), and each
    coding of a selection becomes one reference per clause the selection touches, in the
    coding user's layer (or the consensus layer). All or nothing: a source already in the
    project or a value that fails validation raises ValidationError and nothing is written.
    Returns the project and the import report, which is also stored on a ``project.import``
    event.
    """
    if rule is not None and rule not in RULES:
        raise ValidationError({"rule": f"{rule!r} is not a segmentation rule; use one of {', '.join(RULES)}."})
    report = refi.ImportReport(file_name=file_name, kind=parsed.kind, origin=parsed.origin, rule=rule or "")
    if project is None:
        name = (parsed.name or "Imported project")[:200]
        project = create_project(actor=actor, slug=slug or _free_slug(name), name=name, description=parsed.description)
        report.project_created = True
        if getattr(actor, "pk", None):  # whoever imports a new project administers it
            set_membership(actor=actor, project=project, user=actor, role=Role.ADMIN)
    report.project = project.slug
    report.ignored = dict(parsed.ignored)
    report.notes.extend(parsed.notes)
    _RefiImport(actor=actor, project=project, parsed=parsed, rule=rule, report=report).run()
    event = record_event(
        actor=actor,
        project=project,
        action="project.import",
        target=project,
        after=report.as_dict() | {"sha256": parsed.sha256},
        label=f"{file_name or 'REFI-QDA file'} into {project.slug}",
    )
    report.event_id = event.pk
    return project, report
