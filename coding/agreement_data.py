"""Agreement data: from the database to every figure of the agreement page and command.

The pipeline (STYLE.md §6.4): a handful of queries, independent of the number of policies,
load the codebook, the policies every chosen coder marked done (``Policy.objects.done_by_all``),
their clauses, the chosen layers' references and the adjudications; numpy turns them into a
coders x clauses x nodes boolean array ("coder applied node to clause") per level; the
figures come from ``coding/agreement.py``, vectorised over units. Views and the
``agreement`` command both call :func:`build_report`, so they show the same numbers.

Vocabulary:

* A **layer** is one "coder" of the comparison: a user's references, or the consensus layer
  (:data:`CONSENSUS`), which counts as having coded a policy once it holds a consensus
  reference or an adjudication there (it has no done marks).
* A **level** is ``sub`` (nodes as coded) or ``tree`` (every reference rolled up to its
  root node); ``both`` reports the two.
* A **unit** is a clause (the study's unit: did the coder apply the node to the clause?)
  or a character (NVivo's comparison and Krippendorff's alpha_u over the policy texts,
  concatenated into one continuum in policy order).
* A **decision** is one (clause, node) pair; a **disagreement** is a decision where the
  layers differ (clause unit) or where their coded characters differ (character unit).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise, repeat
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Coalesce, Length, Substr

from coding import agreement
from coding.models import Adjudication, Clause, Membership, Node, Policy, Project, Reference, Role

CONSENSUS = "consensus"
LEVELS = ("sub", "tree", "both")
UNITS = ("clause", "character")
LEVEL_NAMES = {"sub": "Sub-nodes", "tree": "Tree nodes"}
SCOPES = {"sub": Adjudication.Scope.NODE, "tree": Adjudication.Scope.SUBTREE}
# Memory bound for the padded per-policy arrays (cells materialised at once).
_PAD_CELLS = 4_000_000


# --- what to compare -------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One "coder" of the comparison: a user's layer, or the consensus layer (no user)."""

    key: str
    user_id: int | None

    @property
    def is_consensus(self) -> bool:
        return self.user_id is None

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True)
class PolicyFilter:
    """Which policies to consider before the done rule: number ranges, jurisdiction, potency level."""

    numbers: tuple[tuple[int, int], ...] = ()
    jurisdiction: str = ""
    potency_level: str = ""

    def apply(self, policies: QuerySet[Policy]) -> QuerySet[Policy]:
        if self.numbers:
            ranges = Q()
            for low, high in self.numbers:
                ranges |= Q(number__gte=low, number__lte=high)
            policies = policies.filter(ranges)
        if self.jurisdiction:
            policies = policies.filter(jurisdiction=self.jurisdiction)
        if self.potency_level:
            policies = policies.filter(potency_level=self.potency_level)
        return policies

    @property
    def numbers_text(self) -> str:
        return ", ".join(str(low) if low == high else f"{low}-{high}" for low, high in self.numbers)

    def describe(self) -> str:
        parts = []
        if self.numbers:
            parts.append(f"policies {self.numbers_text}")
        if self.jurisdiction:
            parts.append(f"jurisdiction {self.jurisdiction}")
        if self.potency_level:
            parts.append(f"potency level {self.potency_level}")
        return "; ".join(parts) or "all policies"


@dataclass(frozen=True)
class Selection:
    """A validated choice of layers, level, unit and policy filter."""

    layers: tuple[Layer, ...]
    level: str = "sub"
    unit: str = "clause"
    policies: PolicyFilter = field(default_factory=PolicyFilter)

    @property
    def levels(self) -> tuple[str, ...]:
        return ("tree", "sub") if self.level == "both" else (self.level,)

    @property
    def coders(self) -> tuple[Layer, ...]:
        """The layers that are users (not the consensus)."""
        return tuple(layer for layer in self.layers if not layer.is_consensus)

    @property
    def has_consensus(self) -> bool:
        return any(layer.is_consensus for layer in self.layers)

    @property
    def kappa_kind(self) -> str:
        return "cohen" if len(self.layers) == 2 else "fleiss"

    def params(self) -> dict[str, str]:
        """The query string that reproduces this selection (URLs, exports)."""
        params = {"coders": ",".join(layer.key for layer in self.layers), "level": self.level, "unit": self.unit}
        if self.policies.numbers:
            params["policies"] = self.policies.numbers_text
        if self.policies.jurisdiction:
            params["jurisdiction"] = self.policies.jurisdiction
        if self.policies.potency_level:
            params["potency_level"] = self.policies.potency_level
        return params

    def layer(self, key: str) -> Layer | None:
        return next((layer for layer in self.layers if layer.key == key), None)


_RANGE = re.compile(r"^\s*(\d+)\s*(?:[-–]\s*(\d+)\s*)?$")


def parse_numbers(text: str) -> tuple[tuple[int, int], ...]:
    """``"1-10, 15"`` -> ((1, 10), (15, 15)); ValidationError naming the bad part."""
    ranges = []
    for part in (text or "").replace("，", ",").split(","):
        if not part.strip():
            continue
        match = _RANGE.match(part)
        if not match:
            raise ValidationError(f"Policy numbers: {part.strip()!r} is not a number or a range like 3-7.")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if high < low:
            raise ValidationError(f"Policy numbers: the range {part.strip()!r} runs backwards.")
        ranges.append((low, high))
    return tuple(ranges)


def split_coders(coders: str | Sequence[str] | None) -> list[str]:
    if coders is None:
        return []
    items = coders.split(",") if isinstance(coders, str) else [c for item in coders for c in str(item).split(",")]
    names: list[str] = []
    for item in items:
        name = item.strip()
        if name and name not in names:
            names.append(name)
    return names


def default_coders(project: Project) -> list[str]:
    """The usernames of the project's coders: what the page compares when nothing is chosen."""
    return list(
        Membership.objects.filter(project=project, role=Role.CODER)
        .order_by("user__username")
        .values_list("user__username", flat=True)
    )


def parse_selection(
    project: Project,
    *,
    coders: str | Sequence[str] | None,
    level: str = "sub",
    unit: str = "clause",
    policies: str = "",
    jurisdiction: str = "",
    potency_level: str = "",
) -> Selection:
    """Validate a selection given as text (query string or command line).

    ``coders`` are usernames of project members (comma-separated or a list), and
    ``consensus`` for the consensus layer; at least two layers. Raises ValidationError
    with a message naming what is wrong.
    """
    level = level or "sub"
    unit = unit or "clause"
    if level not in LEVELS:
        raise ValidationError(f"Level {level!r} is not one of: sub (sub-nodes), tree (tree nodes), both.")
    if unit not in UNITS:
        raise ValidationError(f"Unit {unit!r} is not one of: clause, character.")
    names = split_coders(coders)
    if len(names) < 2:
        raise ValidationError("Choose two or more coders, or the consensus layer and a coder.")
    usernames = [name for name in names if name != CONSENSUS]
    User = get_user_model()
    found = dict(
        User.objects.filter(**{f"{User.USERNAME_FIELD}__in": usernames})
        .filter(Q(memberships__project=project) | Q(is_superuser=True))
        .values_list(User.USERNAME_FIELD, "pk")
        .distinct()
    )
    unknown = [name for name in usernames if name not in found]
    if unknown:
        raise ValidationError(f"No member of this project is called {', '.join(repr(n) for n in unknown)}.")
    layers = tuple(Layer(name, None) if name == CONSENSUS else Layer(name, found[name]) for name in names)
    return Selection(
        layers=layers,
        level=level,
        unit=unit,
        policies=PolicyFilter(parse_numbers(policies), (jurisdiction or "").strip(), (potency_level or "").strip()),
    )


def selection_options(project: Project) -> dict[str, list[str]]:
    """Choices for the page's form: coders, jurisdictions and potency levels in use."""
    values = Policy.objects.for_project(project).values_list("jurisdiction", "potency_level").distinct()
    jurisdictions = sorted({j for j, _ in values if j})
    potency_levels = sorted({p for _, p in values if p})
    return {"coders": default_coders(project), "jurisdictions": jurisdictions, "potency_levels": potency_levels}


# --- the codebook ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeInfo:
    id: int
    name: str
    parent_id: int | None
    root_id: int
    path: str
    depth: int
    order: int
    colour: str
    has_children: bool


@dataclass
class Codebook:
    """A project's node tree, loaded in one query and walked in Python (STYLE.md §6.2)."""

    nodes: dict[int, NodeInfo]

    @classmethod
    def load(cls, project: Project) -> Codebook:
        rows = list(
            Node.objects.for_project(project)
            .order_by("position", "id")
            .values_list("pk", "parent_id", "name", "colour")
        )
        children: dict[int | None, list[tuple[int, str, str]]] = {}
        for pk, parent_id, name, colour in rows:
            children.setdefault(parent_id, []).append((pk, name, colour))
        nodes: dict[int, NodeInfo] = {}
        stack = [(pk, name, colour, None, pk, name, 0) for pk, name, colour in reversed(children.get(None, []))]
        while stack:
            pk, name, colour, parent_id, root_id, path, depth = stack.pop()
            nodes[pk] = NodeInfo(pk, name, parent_id, root_id, path, depth, len(nodes), colour, pk in children)
            for child, child_name, child_colour in reversed(children.get(pk, [])):
                stack.append((child, child_name, child_colour, pk, root_id, f"{path} › {child_name}", depth + 1))
        return cls(nodes)

    def subtree(self, node_id: int) -> list[int]:
        return [pk for pk, info in self.nodes.items() if pk == node_id or self._under(info, node_id)]

    def _under(self, info: NodeInfo, ancestor: int) -> bool:
        while info.parent_id is not None:
            if info.parent_id == ancestor:
                return True
            info = self.nodes[info.parent_id]
        return False


# --- figures ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """A coefficient, or ``None`` with the reason in words."""

    value: float | None
    reason: str = ""

    @property
    def computable(self) -> bool:
        return self.value is not None

    @property
    def percent_value(self) -> float | None:
        return None if self.value is None else 100.0 * self.value

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "reason": self.reason}


def _figure(value: float | None, reason: str) -> Figure:
    return Figure(value, "" if value is not None else reason)


# --- loading ---------------------------------------------------------------------------------


@dataclass
class Coverage:
    """Which policies were compared, and why the others were left out."""

    considered: int
    compared: int
    clauses: int
    reasons: list[str]

    @property
    def left_out(self) -> int:
        return self.considered - self.compared

    def as_dict(self) -> dict[str, Any]:
        return {
            "considered": self.considered,
            "compared": self.compared,
            "left_out": self.left_out,
            "clauses": self.clauses,
            "reasons": self.reasons,
        }


def _layer_filter(selection: Selection) -> Q:
    condition = Q(pk__in=[])
    coder_ids = [layer.user_id for layer in selection.coders]
    if coder_ids:
        condition |= Q(consensus=False, coder_id__in=coder_ids)
    if selection.has_consensus:
        condition |= Q(consensus=True)
    return condition


def compared_policies(
    project: Project, selection: Selection, within: QuerySet[Policy] | None = None
) -> QuerySet[Policy]:
    """The policies the comparison uses: in the filter (and in ``within``, a caller's own
    choice of the project's policies, when given), with text, done by every chosen coder (and,
    with the consensus layer, holding consensus coding or an adjudication)."""
    policies = selection.policies.apply(_considered(project, within)).exclude(text="")
    policies = policies.done_by_all(layer.user_id for layer in selection.coders)
    if selection.has_consensus:
        policies = policies.filter(_consensus_exists())
    return policies


def _consensus_exists() -> Q:
    return Q(Exists(Reference.objects.filter(policy=OuterRef("pk"), consensus=True))) | Q(
        Exists(Adjudication.objects.filter(clause__policy=OuterRef("pk")))
    )


def _considered(project: Project, within: QuerySet[Policy] | None) -> QuerySet[Policy]:
    policies = Policy.objects.for_project(project)
    return policies if within is None else policies.filter(pk__in=within.values("pk"))


def _coverage(
    project: Project, selection: Selection, compared: int, clauses: int, within: QuerySet[Policy] | None = None
) -> Coverage:
    considered = selection.policies.apply(_considered(project, within))
    aggregates: dict[str, Any] = {
        "considered": Count("pk", distinct=True),
        "no_text": Count("pk", filter=Q(text=""), distinct=True),
    }
    for index, layer in enumerate(selection.coders):
        aggregates[f"done_{index}"] = Count(
            "done_marks", filter=Q(done_marks__coder_id=layer.user_id) & ~Q(text=""), distinct=True
        )
    if selection.has_consensus:
        considered = considered.annotate(_has_consensus=_consensus_exists())
        aggregates["consensus"] = Count("pk", filter=Q(_has_consensus=True) & ~Q(text=""), distinct=True)
    totals = considered.aggregate(**aggregates)
    total = totals["considered"]
    with_text = total - totals["no_text"]
    reasons = []
    if totals["no_text"]:
        reasons.append(f"{totals['no_text']} ha{'s' if totals['no_text'] == 1 else 've'} no text yet")
    if with_text > compared:
        done = [f"{layer.key} {totals[f'done_{i}']}" for i, layer in enumerate(selection.coders)]
        reason = (
            f"{with_text - compared} of the {with_text} with text are not marked done by every chosen coder "
            f"(marked done: {', '.join(done)} of {with_text})"
        )
        if selection.has_consensus:
            reason += f"; the consensus layer has coding or decisions in {totals['consensus']} of them"
        reasons.append(reason)
    return Coverage(considered=total, compared=compared, clauses=clauses, reasons=reasons)


class Dataset:
    """Everything the figures need, loaded in a fixed number of queries."""

    def __init__(self, project: Project, selection: Selection, within: QuerySet[Policy] | None = None):
        self.project = project
        self.selection = selection
        self.codebook = Codebook.load(project)
        included = compared_policies(project, selection, within)
        self.policies = pd.DataFrame(
            list(
                included.annotate(length=Length("text"))
                .order_by("number")
                .values_list("pk", "number", "title", "length")
            ),
            columns=["policy_id", "number", "title", "length"],
        )
        ids = included.values("pk")
        clauses = pd.DataFrame(
            _int_rows(
                Clause.objects.filter(policy__in=ids)
                .order_by()
                .values_list("pk", "policy_id", "number", "start", "end"),
                5,
            ),
            columns=["clause_id", "policy_id", "number", "start", "end"],
        )
        self.policies["pos"] = np.arange(len(self.policies))
        clauses["pos"] = clauses["policy_id"].map(self.policies.set_index("policy_id")["pos"])
        self.clauses = clauses.sort_values(["pos", "start"], kind="stable").reset_index(drop=True)
        self.clauses["unit"] = np.arange(len(self.clauses))
        # The consensus layer is the one without a coder (a CHECK constraint): owner 0.
        rows = _int_rows(
            Reference.objects.filter(_layer_filter(selection), policy__in=ids)
            .order_by()  # sorted in numpy; an ORDER BY would sort every reference in the database
            .annotate(owner=Coalesce("coder_id", Value(0)))
            .values_list("owner", "clause_id", "node_id", "start", "end"),
            5,
        )
        owners = pd.Index([layer.user_id or 0 for layer in selection.layers])
        self.refs = pd.DataFrame(
            {
                "layer": owners.get_indexer(rows[:, 0]),
                "unit": pd.Index(self.clauses["clause_id"]).get_indexer(rows[:, 1]),
                "node_id": rows[:, 2],
                "start": rows[:, 3],
                "end": rows[:, 4],
            }
        ).astype(np.int64)
        self.adjudications = pd.DataFrame(
            list(
                Adjudication.objects.filter(clause__policy__in=ids)
                .order_by()
                .values_list("clause_id", "node_id", "scope", "decision")
            ),
            columns=["clause_id", "node_id", "scope", "decision"],
        )
        self.coverage = _coverage(project, selection, len(self.policies), len(self.clauses), within)

    @property
    def n_layers(self) -> int:
        return len(self.selection.layers)

    @property
    def n_units(self) -> int:
        return len(self.clauses)

    @cached_property
    def unit_policy(self) -> npt.NDArray[np.int64]:
        """Position (0..P-1, in policy-number order) of each clause's policy."""
        return self.clauses["pos"].to_numpy(dtype=np.int64)

    def level(self, level: str) -> LevelData:
        if level not in ("sub", "tree"):
            raise ValueError(f"unknown level {level!r}")
        cache = self.__dict__.setdefault("_levels", {})
        if level not in cache:
            cache[level] = LevelData(self, level)
        return cache[level]


def _int_rows(rows: Iterable[tuple[int, ...]], width: int) -> npt.NDArray[np.int64]:
    return np.array(list(rows), dtype=np.int64).reshape(-1, width)


def load_dataset(project: Project, selection: Selection, within: QuerySet[Policy] | None = None) -> Dataset:
    """Load the data for ``selection`` (about seven queries, whatever the number of policies),
    only from the policies in ``within`` when given (the dashboards' filters)."""
    return Dataset(project, selection, within)


# --- one level: the coders x clauses x nodes array ---------------------------------------------


def _merge_spans(
    group: npt.NDArray[np.int64], start: npt.NDArray[np.int64], end: npt.NDArray[np.int64], *, touching: bool
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Union the spans of each group: overlapping ones (and, with ``touching``, abutting
    ones) become one. Returns (group, start, end) sorted by group then start."""
    if len(start) == 0:
        return group, start, end
    order = np.lexsort((start, group))
    group, start, end = group[order], start[order], end[order]
    new_group = np.r_[True, group[1:] != group[:-1]]
    run_end = pd.Series(end).groupby(np.cumsum(new_group)).cummax().to_numpy()
    previous_end = np.r_[-1, run_end[:-1]]
    opens = new_group | (start > previous_end if touching else start >= previous_end)
    firsts = np.flatnonzero(opens)
    return group[firsts], start[firsts], np.maximum.reduceat(end, firsts)


@dataclass(frozen=True)
class _Sweep:
    """Per key: characters coded by both / first only / second only, and whether any
    character is coded by some but not all layers."""

    both: npt.NDArray[np.int64]
    first_only: npt.NDArray[np.int64]
    second_only: npt.NDArray[np.int64]
    differs: npt.NDArray[np.bool_]


def _sweep(
    layer: npt.NDArray[np.int64],
    key: npt.NDArray[np.int64],
    start: npt.NDArray[np.int64],
    end: npt.NDArray[np.int64],
    *,
    n_keys: int,
    layers: Sequence[int],
) -> _Sweep:
    """Walk the span boundaries of every key at once (spans already merged per layer and key).

    Between two consecutive boundaries of one key the number of layers covering the
    stretch is constant: the running sum of +1 (start) / -1 (end) events.
    """
    keep = np.isin(layer, layers)
    layer, key, start, end = layer[keep], key[keep], start[keep], end[keep]
    position = np.concatenate([start, end])
    step = np.concatenate([np.ones(len(start), np.int64), -np.ones(len(end), np.int64)])
    keys = np.concatenate([key, key])
    owner = np.concatenate([layer, layer])
    order = np.lexsort((position, keys))
    position, step, keys, owner = position[order], step[order], keys[order], owner[order]
    covering = np.cumsum(step)
    first = np.cumsum(np.where(owner == layers[0], step, 0))
    second = np.cumsum(np.where(owner == layers[1], step, 0)) if len(layers) > 1 else np.zeros_like(first)
    length = np.zeros(len(position), np.int64)
    same_key = np.flatnonzero(keys[1:] == keys[:-1])
    length[same_key] = position[same_key + 1] - position[same_key]

    def per_key(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        return np.bincount(keys, weights=np.where(mask, length, 0), minlength=n_keys).astype(np.int64)

    partial = (covering > 0) & (covering < len(layers)) & (length > 0)
    return _Sweep(
        both=per_key((first > 0) & (second > 0)),
        first_only=per_key((first > 0) & (second == 0)),
        second_only=per_key((first == 0) & (second > 0)),
        differs=np.bincount(keys, weights=partial, minlength=n_keys) > 0,
    )


def _padded_by_group(
    values: npt.NDArray[np.bool_], group: npt.NDArray[np.int64], n_groups: int
) -> Iterable[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
    """Yield (group ids, coders x widest group x groups tensor, NaN-padded) in memory-bounded
    chunks of consecutive groups.

    ``values`` is coders x items and ``group`` the group of each item, non-decreasing (items
    of one group are contiguous, as decisions are in policy order).
    """
    if len(group) and np.any(group[1:] < group[:-1]):
        raise ValueError("items must be ordered by group")
    m = values.shape[0]
    sizes = np.bincount(group, minlength=n_groups)
    starts = np.r_[0, np.cumsum(sizes)]
    rank = np.arange(len(group)) - starts[group]
    first = 0
    while first < n_groups:
        last = first + 1  # exclusive
        width = max(int(sizes[first]), 1)
        while last < n_groups and m * max(width, int(sizes[last])) * (last - first + 1) <= _PAD_CELLS:
            width = max(width, int(sizes[last]))
            last += 1
        lo, hi = starts[first], starts[last]
        tensor = np.full((m, width, last - first), np.nan)
        tensor[:, rank[lo:hi], group[lo:hi] - first] = values[:, lo:hi]
        yield np.arange(first, last), tensor
        first = last


class LevelData:
    """The decisions of one level: ``applied[layer, clause, column]``, and for the character
    unit the merged spans per layer, clause and column."""

    def __init__(self, dataset: Dataset, level: str):
        self.dataset = dataset
        self.level = level
        self.scope = SCOPES[level]
        codebook = dataset.codebook
        refs = dataset.refs
        ordered = sorted(codebook.nodes.values(), key=lambda n: n.order)
        if level == "tree":
            columns = [n.id for n in ordered if n.parent_id is None]
            target = {n.id: n.root_id for n in ordered}
        else:
            # Nodes as coded: every leaf, and a node with sub-nodes only where it was coded directly.
            coded = set(refs["node_id"].unique().tolist())
            columns = [n.id for n in ordered if not n.has_children or n.id in coded]
            target = {pk: pk for pk in columns}
        self.columns = columns
        self.column_index = {pk: i for i, pk in enumerate(columns)}
        index_of = {pk: self.column_index[root] for pk, root in target.items()}
        self.ref_column = refs["node_id"].map(index_of).fillna(-1).to_numpy(dtype=np.int64)
        m, u, k = dataset.n_layers, dataset.n_units, len(columns)
        self.applied = np.zeros((m, u, k), dtype=bool)
        ok = self.ref_column >= 0
        self.applied[refs["layer"].to_numpy()[ok], refs["unit"].to_numpy()[ok], self.ref_column[ok]] = True

    @property
    def n_columns(self) -> int:
        return len(self.columns)

    def column_nodes(self) -> list[NodeInfo]:
        return [self.dataset.codebook.nodes[pk] for pk in self.columns]

    # -- character unit ------------------------------------------------------------------------

    @cached_property
    def spans(self) -> pd.DataFrame:
        """Each layer's coded stretches per (clause, column), overlapping and abutting
        references united (what NVivo counts as coded characters)."""
        refs = self.dataset.refs
        ok = self.ref_column >= 0
        m, k = self.dataset.n_layers, max(self.n_columns, 1)
        key = (refs["unit"].to_numpy()[ok] * k + self.ref_column[ok]) * m + refs["layer"].to_numpy()[ok]
        group, start, end = _merge_spans(key, refs["start"].to_numpy()[ok], refs["end"].to_numpy()[ok], touching=True)
        layer = group % m
        unit_column = group // m
        return pd.DataFrame(
            {"layer": layer, "unit": unit_column // k, "column": unit_column % k, "start": start, "end": end}
        )

    def sweep(self, layers: Sequence[int]) -> _Sweep:
        """Character counts per (clause, column) key = unit * K + column (kept per set of layers:
        the node, pair, policy and overall tables all ask for the same sweeps)."""
        cache = self.__dict__.setdefault("_sweeps", {})
        layers = tuple(layers)
        if layers not in cache:
            spans = self.spans
            k = max(self.n_columns, 1)
            cache[layers] = _sweep(
                spans["layer"].to_numpy(),
                spans["unit"].to_numpy() * k + spans["column"].to_numpy(),
                spans["start"].to_numpy(),
                spans["end"].to_numpy(),
                n_keys=self.dataset.n_units * k,
                layers=list(layers),
            )
        return cache[layers]

    @cached_property
    def sweep_all(self) -> _Sweep:
        return self.sweep(range(self.dataset.n_layers))

    @cached_property
    def unitizing(self) -> dict[int, agreement.UnitizedAlphaResult]:
        """alpha_u per column someone coded (one call per node, each vectorised over spans)."""
        spans = self.unitizing_spans()
        length = int(self.dataset.policies["length"].sum())
        results = {}
        for column, group in spans.groupby("column"):
            coders: list[list[tuple[int, int, int]]] = [[] for _ in range(self.dataset.n_layers)]
            for layer, part in group.groupby("layer"):
                coders[int(layer)] = list(zip(part["start"].tolist(), part["end"].tolist(), repeat(int(column))))
            results[int(column)] = agreement.unitized_alpha_details(length, coders, category=int(column))
        return results

    def unitizing_spans(self) -> pd.DataFrame:
        """Spans for alpha_u on one continuum: the compared policies' texts in policy-number
        order, each reference shifted by the length of the texts before it; only
        overlapping references of one layer and column are united (abutting ones stay two
        units, as coded)."""
        refs = self.dataset.refs
        ok = self.ref_column >= 0
        lengths = self.dataset.policies["length"].to_numpy(dtype=np.int64)
        offsets = np.r_[0, np.cumsum(lengths)[:-1]]
        shift = offsets[self.dataset.unit_policy[refs["unit"].to_numpy()[ok]]]
        m = self.dataset.n_layers
        key = self.ref_column[ok] * m + refs["layer"].to_numpy()[ok]
        group, start, end = _merge_spans(
            key, refs["start"].to_numpy()[ok] + shift, refs["end"].to_numpy()[ok] + shift, touching=False
        )
        return pd.DataFrame({"layer": group % m, "column": group // m, "start": start, "end": end})

    # -- disagreements ---------------------------------------------------------------------------

    def disagreement_mask(self, pair: tuple[int, int] | None = None) -> npt.NDArray[np.bool_]:
        """clauses x columns: where the layers (or the two of ``pair``) differ."""
        if self.dataset.selection.unit == "character":
            sweep = self.sweep(pair) if pair else self.sweep_all
            return sweep.differs.reshape(self.dataset.n_units, max(self.n_columns, 1))[:, : self.n_columns]
        applied = self.applied if pair is None else self.applied[list(pair)]
        count = applied.sum(axis=0)
        return (count > 0) & (count < applied.shape[0])

    @cached_property
    def disagreements(self) -> npt.NDArray[np.bool_]:
        return self.disagreement_mask()

    @cached_property
    def resolved(self) -> npt.NDArray[np.bool_]:
        """clauses x columns: an adjudication of this scope exists for the decision."""
        mask = np.zeros((self.dataset.n_units, self.n_columns), dtype=bool)
        adjudications = self.dataset.adjudications
        adjudications = adjudications[adjudications["scope"] == self.scope]
        if len(adjudications):
            units = pd.Index(self.dataset.clauses["clause_id"]).get_indexer(adjudications["clause_id"])
            columns = adjudications["node_id"].map(self.column_index).fillna(-1).to_numpy(dtype=np.int64)
            ok = (units >= 0) & (columns >= 0)
            mask[units[ok], columns[ok]] = True
        return mask

    def agreed_units(self) -> npt.NDArray[np.int64]:
        """(unit, column) rows where every layer applied the node to the clause."""
        return np.argwhere(self.applied.all(axis=0)) if self.dataset.n_layers else np.zeros((0, 2), np.int64)

    def disagreement_units(
        self, *, column: int | None = None, policy_pos: int | None = None, pair: tuple[int, int] | None = None
    ) -> npt.NDArray[np.int64]:
        """(unit, column) rows of the disagreements, in policy, clause and codebook order."""
        mask = self.disagreement_mask(pair) if pair else self.disagreements
        if column is not None:
            only = np.zeros_like(mask)
            only[:, column] = mask[:, column]
            mask = only
        if policy_pos is not None:
            mask = mask & (self.dataset.unit_policy == policy_pos)[:, np.newaxis]
        return np.argwhere(mask)


# --- the report ------------------------------------------------------------------------------


@dataclass
class NodeRow:
    node_id: int
    name: str
    path: str
    depth: int
    units: int
    applied: list[int]
    disagreements: int
    resolved: int
    percent: Figure
    kappa: Figure
    alpha: Figure
    # character unit only
    characters: int = 0
    coded: list[int] = field(default_factory=list)
    alpha_u: Figure | None = None


@dataclass
class PairRow:
    first: str
    second: str
    first_index: int
    second_index: int
    kappa: Figure
    percent: Figure
    disagreements: int


@dataclass
class PolicyRow:
    number: int
    title: str
    clauses: int
    coded: list[int]
    disagreements: int
    resolved: int
    percent: Figure
    alpha: Figure
    kappa: Figure | None = None  # character unit: pooled over nodes


@dataclass
class OverallRow:
    key: str
    label: str
    figure: Figure
    n: int
    note: str = ""


@dataclass
class LevelReport:
    level: str
    scope: str
    nodes: list[NodeRow]
    overall: list[OverallRow]
    pairs: list[PairRow]
    policies: list[PolicyRow]
    disagreements: int
    resolved: int
    agreed: int = 0  # clause x node decisions where every layer applied the node

    @property
    def name(self) -> str:
        return LEVEL_NAMES[self.level]


@dataclass
class Report:
    selection: Selection
    coverage: Coverage
    levels: list[LevelReport]

    @property
    def layers(self) -> tuple[Layer, ...]:
        return self.selection.layers

    def records(self, table: str) -> list[dict[str, Any]]:
        """One table as flat rows (exports, the command's csv and table output)."""
        return table_records(self, table)

    def as_dict(self) -> dict[str, Any]:
        return {
            "selection": {
                "coders": [layer.key for layer in self.selection.layers],
                "level": self.selection.level,
                "unit": self.selection.unit,
                "policies": self.selection.policies.describe(),
            },
            "coverage": self.coverage.as_dict(),
            "levels": {
                level.level: {table: _records_for_level(self, level, table) for table in TABLES if table != "overall"}
                | {"overall": _records_for_level(self, level, "overall")}
                for level in self.levels
            },
        }


def _no_units_reason(dataset: Dataset) -> str:
    if dataset.selection.has_consensus:
        return "no clauses to compare: no policy is marked done by every chosen coder and holds consensus coding"
    return "no clauses to compare: no policy is marked done by every chosen coder"


def _binary_reason(count: int, units: int, what: str = "clause") -> str:
    if units == 0:
        return ""
    if count == 0:
        return f"no variation: no coder applied this node to any of the {units} {what}s"
    return f"no variation: every coder applied this node to all {units} {what}s"


def _node_rows_clause(data: LevelData) -> list[NodeRow]:
    dataset = data.dataset
    applied = data.applied
    m, u, k = applied.shape
    alphas = agreement.krippendorff_alpha_binary_many(applied) if u else [None] * k
    applied_counts = applied.sum(axis=1)
    disagreements = data.disagreements.sum(axis=0)
    resolved = (data.disagreements & data.resolved).sum(axis=0)
    rows = []
    for column, node in enumerate(data.column_nodes()):
        matrix = applied[:, :, column].astype(np.int8)
        total = int(applied_counts[:, column].sum())
        reason = _binary_reason(total, u) if u else _no_units_reason(dataset)
        if not u:
            percent = kappa = alpha = Figure(None, reason)
        else:
            percent = _figure(agreement.percent_agreement(matrix), reason)
            if m == 2:
                kappa = _figure(_two_by_two(matrix[0], matrix[1]).kappa, reason)
            else:
                kappa = _figure(agreement.fleiss_kappa(matrix), reason)
            alpha = _figure(alphas[column], reason)
        rows.append(
            NodeRow(
                node_id=node.id,
                name=node.name,
                path=node.path,
                depth=node.depth,
                units=u,
                applied=[int(x) for x in applied_counts[:, column]],
                disagreements=int(disagreements[column]),
                resolved=int(resolved[column]),
                percent=percent,
                kappa=kappa,
                alpha=alpha,
            )
        )
    return rows


def _two_by_two(first: npt.NDArray[Any], second: npt.NDArray[Any]) -> agreement.CharacterAgreement:
    """Cohen's kappa and percent agreement of two 0/1 vectors from their 2 x 2 table
    (``CharacterAgreement.from_counts`` is exactly that: kappa on the 2 x 2 table)."""
    first = first.astype(bool)
    second = second.astype(bool)
    a = int(np.count_nonzero(first & second))
    b = int(np.count_nonzero(first)) - a
    c = int(np.count_nonzero(second)) - a
    return agreement.CharacterAgreement.from_counts(a, b, c, len(first) - a - b - c)


def _character_counts(data: LevelData, layers: tuple[int, int]) -> tuple[npt.NDArray[np.int64], ...]:
    """a, b, c per (policy, column) for two layers; d follows from the policy length."""
    dataset = data.dataset
    k = max(data.n_columns, 1)
    sweep = data.sweep(layers)
    unit_key_policy = np.repeat(dataset.unit_policy, k) * k + np.tile(np.arange(k), dataset.n_units)
    n = len(dataset.policies) * k
    return tuple(
        np.bincount(unit_key_policy, weights=counts, minlength=n).astype(np.int64).reshape(len(dataset.policies), k)
        for counts in (sweep.both, sweep.first_only, sweep.second_only)
    )


def _character_reason(agree: agreement.CharacterAgreement) -> str:
    if agree.a + agree.b + agree.c == 0:
        return "nothing coded at this node (NVivo shows κ = 1 by convention)"
    return "no variation: both coders coded every character"


def _node_rows_character(data: LevelData) -> list[NodeRow]:
    dataset = data.dataset
    m, u, k = data.applied.shape
    lengths = dataset.policies["length"].to_numpy(dtype=np.int64)
    total_length = int(lengths.sum())
    spans = data.spans
    coded = np.zeros((m, max(k, 1)), dtype=np.int64)
    np.add.at(
        coded, (spans["layer"].to_numpy(), spans["column"].to_numpy()), (spans["end"] - spans["start"]).to_numpy()
    )
    if m == 2 and u:
        a, b, c = _character_counts(data, (0, 1))
    disagreements = data.disagreements.sum(axis=0)
    resolved = (data.disagreements & data.resolved).sum(axis=0)
    rows = []
    for column, node in enumerate(data.column_nodes()):
        if not u:
            percent = kappa = alpha_u = Figure(None, _no_units_reason(dataset))
        else:
            if m == 2:
                pooled = agreement.CharacterAgreement.from_counts(
                    int(a[:, column].sum()),
                    int(b[:, column].sum()),
                    int(c[:, column].sum()),
                    total_length - int(a[:, column].sum() + b[:, column].sum() + c[:, column].sum()),
                )
                percent = Figure(pooled.percent_agreement)
                kappa = _figure(pooled.kappa, _character_reason(pooled))
            else:
                reason = "NVivo's comparison is between two coders: choose two (α_u takes any number)"
                percent = kappa = Figure(None, reason)
            alpha_u = _alpha_u(data, column)
        rows.append(
            NodeRow(
                node_id=node.id,
                name=node.name,
                path=node.path,
                depth=node.depth,
                units=u,
                applied=[int(x) for x in data.applied[:, :, column].sum(axis=1)],
                disagreements=int(disagreements[column]),
                resolved=int(resolved[column]),
                percent=percent,
                kappa=kappa,
                alpha=Figure(None, "the character unit reports α_u instead"),
                characters=total_length,
                coded=[int(x) for x in coded[:, column]] if k else [0] * m,
                alpha_u=alpha_u,
            )
        )
    return rows


_NO_VARIATION_U = "no variation in what was coded (expected disagreement 0)"


def _alpha_u(data: LevelData, column: int) -> Figure:
    result = data.unitizing.get(column)
    if result is None:
        return Figure(None, "no coder coded this node")
    return _figure(result.alpha, _NO_VARIATION_U)


def _overall_alpha_u(data: LevelData) -> Figure:
    """DKPro's study-level alpha_u, ``1 - mean_c D_o,c / mean_c D_e,c`` over the nodes coded:
    what ``agreement.unitized_alpha(category=None)`` returns, assembled from the per-node
    parts already computed rather than computing them all again (tested equal)."""
    parts = list(data.unitizing.values())
    if not parts:
        return Figure(None, "nothing coded")
    observed = float(np.mean([p.observed for p in parts]))
    expected = float(np.mean([p.expected for p in parts]))
    return _figure(None if expected <= 0.0 else 1.0 - observed / expected, _NO_VARIATION_U)


def _overall_clause(data: LevelData) -> list[OverallRow]:
    applied = data.applied
    m, u, k = applied.shape
    if not u:
        reason = _no_units_reason(data.dataset)
        return [
            OverallRow("masi_alpha", "Krippendorff's α, MASI distance over node sets", Figure(None, reason), 0),
            OverallRow("nominal_alpha", "Krippendorff's α, nominal (one node per clause)", Figure(None, reason), 0),
            OverallRow(
                "identical_sets", "Agreement on the whole node set (share of coder pairs)", Figure(None, reason), 0
            ),
        ]
    # Each (layer, clause) cell's node set, built once per distinct set rather than per cell:
    # the cells' bit patterns (63 nodes to a word) are factorised by hashing.
    flat = applied.reshape(m * u, k)
    words = [
        flat[:, i : i + 63].astype(np.int64) @ (np.int64(1) << np.arange(min(63, k - i), dtype=np.int64))
        for i in range(0, k, 63)
    ] or [np.zeros(m * u, np.int64)]
    codes, _ = pd.MultiIndex.from_arrays(words).factorize() if len(words) > 1 else pd.factorize(words[0])
    inverse = codes.reshape(m, u)
    first_cell = np.unique(codes, return_index=True)[1]
    columns = np.array(data.columns, dtype=np.int64)
    sets = [columns[flat[cell]].tolist() for cell in first_cell]
    masi = agreement.masi_alpha_from_codes(inverse, sets)
    same_everywhere = "no variation: every coder gave every clause the same node set"
    rows = [
        OverallRow(
            "masi_alpha",
            "Krippendorff's α, MASI distance over node sets",
            _figure(masi.alpha, same_everywhere),
            u,
        ),
    ]
    per_cell = applied.sum(axis=2)
    single = (per_cell <= 1).all(axis=0)
    n_single = int(single.sum())
    values = np.where(per_cell == 1, applied.argmax(axis=2), k)[:, single]  # k = "no node"
    if n_single:
        nominal = _figure(
            agreement.krippendorff_alpha(values, "nominal"),
            "no variation: every coder gave every such clause the same node (or none)",
        )
    else:
        nominal = Figure(None, "every clause carries more than one node for some coder: see the MASI α")
    note = ""
    if n_single < u:
        note = f"over the {n_single} clauses where each coder applied at most one node; {u - n_single} left out"
    rows.append(OverallRow("nominal_alpha", "Krippendorff's α, nominal (one node per clause)", nominal, n_single, note))
    rows.append(
        OverallRow(
            "identical_sets",
            "Agreement on the whole node set (share of coder pairs)",
            Figure(agreement.percent_agreement(inverse)),
            u,
        )
    )
    return rows


def _overall_character(data: LevelData) -> list[OverallRow]:
    dataset = data.dataset
    m, u, k = data.applied.shape
    total_length = int(dataset.policies["length"].sum()) if len(dataset.policies) else 0
    if not u:
        return [OverallRow("alpha_u", "Krippendorff's α_u, all nodes", Figure(None, _no_units_reason(dataset)), 0)]
    rows = [
        OverallRow(
            "alpha_u",
            "Krippendorff's α_u, all nodes (DKPro aggregation)",
            _overall_alpha_u(data),
            total_length,
        )
    ]
    if m == 2:
        a, b, c = (int(x.sum()) for x in _character_counts(data, (0, 1)))
        pooled = agreement.CharacterAgreement.from_counts(a, b, c, total_length * k - a - b - c) if k else None
        if pooled is not None:
            note = "NVivo's per-character figures pooled over policies and nodes"
            rows.append(
                OverallRow(
                    "character_percent", "Character agreement (%)", Figure(pooled.percent_agreement), total_length, note
                )
            )
            rows.append(
                OverallRow(
                    "character_kappa",
                    "Character κ",
                    _figure(pooled.kappa, _character_reason(pooled)),
                    total_length,
                    note,
                )
            )
    return rows


def _pair_rows(data: LevelData) -> list[PairRow]:
    layers = data.dataset.selection.layers
    m, u, k = data.applied.shape
    rows = []
    for i in range(m):
        for j in range(i + 1, m):
            if data.dataset.selection.unit == "character":
                if not u or not k:
                    kappa = percent = Figure(None, _no_units_reason(data.dataset))
                else:
                    a, b, c = (int(x.sum()) for x in _character_counts(data, (i, j)))
                    total = int(data.dataset.policies["length"].sum()) * k
                    pooled = agreement.CharacterAgreement.from_counts(a, b, c, total - a - b - c)
                    kappa = _figure(pooled.kappa, _character_reason(pooled))
                    percent = Figure(pooled.percent_agreement)
            elif not u or not k:
                kappa = percent = Figure(None, _no_units_reason(data.dataset))
            else:
                table = _two_by_two(data.applied[i].ravel(), data.applied[j].ravel())
                kappa = _figure(
                    table.kappa,
                    "no variation: neither coder applied any node"
                    if table.a + table.b + table.c == 0
                    else "no variation: both applied every node everywhere",
                )
                percent = Figure(table.percent_agreement)
            rows.append(
                PairRow(
                    first=layers[i].key,
                    second=layers[j].key,
                    first_index=i,
                    second_index=j,
                    kappa=kappa,
                    percent=percent,
                    disagreements=int(data.disagreement_mask((i, j)).sum()),
                )
            )
    return rows


def _policy_rows(data: LevelData) -> list[PolicyRow]:
    dataset = data.dataset
    policies = dataset.policies
    p = len(policies)
    if not p:
        return []
    applied = data.applied
    m, u, k = applied.shape
    unit_policy = dataset.unit_policy
    clauses = np.bincount(unit_policy, minlength=p)
    coded = np.stack([np.bincount(unit_policy, weights=applied[layer].any(axis=1), minlength=p) for layer in range(m)])
    disagreeing = data.disagreements.any(axis=1)
    disagreements = np.bincount(unit_policy, weights=disagreeing, minlength=p)
    resolved = np.bincount(
        unit_policy, weights=disagreeing & ~(data.disagreements & ~data.resolved).any(axis=1), minlength=p
    )
    # Percent agreement per policy over its clause x node decisions, definition (b) of
    # AGREEMENT.md §2.1 (share of agreeing coder pairs, averaged over decisions); equal to
    # agreement.percent_agreement on the policy's decisions (tested).
    n1 = applied.sum(axis=0).astype(np.float64)  # clauses x columns
    share = (n1 * (n1 - 1) + (m - n1) * (m - n1 - 1)) / (m * (m - 1))
    decision_policy = np.repeat(unit_policy, k)
    decisions = np.bincount(decision_policy, minlength=p)
    percent = np.bincount(decision_policy, weights=share.ravel(), minlength=p) / np.maximum(decisions, 1)
    alphas: list[float | None] = [None] * p
    if k and u:
        flat = applied.reshape(m, u * k)
        for chunk, tensor in _padded_by_group(flat, decision_policy, p):
            for g, alpha in zip(chunk.tolist(), agreement.krippendorff_alpha_binary_many(tensor), strict=True):
                alphas[g] = alpha
    counts = None
    if dataset.selection.unit == "character" and m == 2 and k:
        a, b, c = (x.sum(axis=1) for x in _character_counts(data, (0, 1)))
        counts = (a, b, c)
    character = dataset.selection.unit == "character"
    lengths = policies["length"].tolist()
    columns = (
        clauses.tolist(),
        coded.T.astype(np.int64).tolist(),
        disagreements.astype(np.int64).tolist(),
        resolved.astype(np.int64).tolist(),
        decisions.tolist(),
        percent.tolist(),
    )
    rows = []
    for pos, (number, title, n_clauses, n_coded, n_disagreements, n_resolved, n_decisions, share_pos) in enumerate(
        zip(policies["number"].tolist(), policies["title"].tolist(), *columns, strict=True)
    ):
        if not n_decisions:
            reason = "no clauses" if not n_clauses else "no nodes in the codebook"
            pct = alpha = Figure(None, reason)
        else:
            pct = Figure(share_pos)
            alpha = _figure(
                alphas[pos],
                "no variation: no coder applied any node here" if not any(n_coded) else "no variation in this policy",
            )
        kappa = None
        if character:
            if counts is None:
                kappa = Figure(None, "NVivo's comparison is between two coders")
            else:
                a_, b_, c_ = (int(x[pos]) for x in counts)
                pooled = agreement.CharacterAgreement.from_counts(a_, b_, c_, lengths[pos] * k - a_ - b_ - c_)
                kappa = _figure(pooled.kappa, _character_reason(pooled))
        rows.append(
            PolicyRow(
                number=number,
                title=title,
                clauses=n_clauses,
                coded=n_coded,
                disagreements=n_disagreements,
                resolved=n_resolved,
                percent=pct,
                alpha=alpha,
                kappa=kappa,
            )
        )
    return rows


def level_report(data: LevelData) -> LevelReport:
    character = data.dataset.selection.unit == "character"
    return LevelReport(
        level=data.level,
        scope=data.scope,
        nodes=_node_rows_character(data) if character else _node_rows_clause(data),
        overall=_overall_character(data) if character else _overall_clause(data),
        pairs=_pair_rows(data),
        policies=_policy_rows(data),
        disagreements=int(data.disagreements.sum()),
        resolved=int((data.disagreements & data.resolved).sum()),
        agreed=int(data.agreed_units().shape[0]),
    )


def build_report(project: Project, selection: Selection, dataset: Dataset | None = None) -> Report:
    """Every figure of the agreement page for ``selection``."""
    dataset = dataset or load_dataset(project, selection)
    return Report(
        selection=selection,
        coverage=dataset.coverage,
        levels=[level_report(dataset.level(level)) for level in selection.levels],
    )


def group_alphas(dataset: Dataset, groups: Mapping[Hashable, Collection[int]]) -> dict[Hashable, Figure]:
    """Krippendorff's alpha (nominal, clause unit) per group of nodes, by the rule of the
    node table: a layer applied a group to a clause when it applied any node of the group
    there. A root node with every node under it gives the tree level's figure, a node alone
    the sub-node level's (for a node in its columns); other groups, such as a sub-node with
    the deeper nodes under it, follow the same rule. Not computable figures carry the node
    table's reasons. One pass over the references, whatever the number of groups.
    """
    keys = list(groups)
    m, u, k = dataset.n_layers, dataset.n_units, len(keys)
    pairs = pd.DataFrame(
        [(node_id, column) for column, key in enumerate(keys) for node_id in set(groups[key])],
        columns=["node_id", "column"],
        dtype=np.int64,
    )
    hits = dataset.refs[["layer", "unit", "node_id"]].merge(pairs, on="node_id")
    applied = np.zeros((m, u, k), dtype=bool)
    applied[hits["layer"].to_numpy(), hits["unit"].to_numpy(), hits["column"].to_numpy()] = True
    alphas = agreement.krippendorff_alpha_binary_many(applied) if u and k else [None] * k
    totals = applied.sum(axis=(0, 1))
    figures = {}
    for column, key in enumerate(keys):
        if not u:
            figures[key] = Figure(None, _no_units_reason(dataset))
        else:
            figures[key] = _figure(alphas[column], _binary_reason(int(totals[column]), u))
    return figures


# --- flat tables: exports, the command --------------------------------------------------------

TABLES = ("nodes", "overall", "pairs", "policies")


def _notes(**figures: Figure | None) -> str:
    """Why figures are not computable, each reason once: "kappa, alpha: no variation: ..."."""
    by_reason: dict[str, list[str]] = {}
    for name, figure in figures.items():
        if figure is not None and figure.value is None:
            by_reason.setdefault(figure.reason, []).append(name)
    return "; ".join(f"{', '.join(names)}: {reason}" for reason, names in by_reason.items())


def _records_for_level(report: Report, level: LevelReport, table: str) -> list[dict[str, Any]]:
    selection = report.selection
    layers = selection.layers
    character = selection.unit == "character"
    kappa_name = "cohen_kappa" if selection.kappa_kind == "cohen" else "fleiss_kappa"
    rows: list[dict[str, Any]] = []
    if table == "nodes":
        for row in level.nodes:
            record: dict[str, Any] = {"level": level.level, "node_id": row.node_id, "node": row.path}
            if character:
                record["characters"] = row.characters
                record |= {f"coded_characters_{layer.key}": n for layer, n in zip(layers, row.coded, strict=True)}
                record |= {
                    "disagreeing_clauses": row.disagreements,
                    "resolved": row.resolved,
                    "character_percent_agreement": row.percent.value,
                    "character_kappa": row.kappa.value,
                    "alpha_u": row.alpha_u.value if row.alpha_u else None,
                    "notes": _notes(percent=row.percent, kappa=row.kappa, alpha_u=row.alpha_u),
                }
            else:
                record["clauses"] = row.units
                record |= {f"applied_{layer.key}": n for layer, n in zip(layers, row.applied, strict=True)}
                record |= {
                    "disagreements": row.disagreements,
                    "resolved": row.resolved,
                    "percent_agreement": row.percent.value,
                    kappa_name: row.kappa.value,
                    "krippendorff_alpha": row.alpha.value,
                    "notes": _notes(percent=row.percent, kappa=row.kappa, alpha=row.alpha),
                }
            rows.append(record)
    elif table == "overall":
        for row in level.overall:
            rows.append(
                {
                    "level": level.level,
                    "figure": row.key,
                    "label": row.label,
                    "value": row.figure.value,
                    "n": row.n,
                    "notes": "; ".join(x for x in (row.figure.reason, row.note) if x),
                }
            )
        rows.append(
            {
                "level": level.level,
                "figure": "resolved",
                "label": "Disagreements resolved",
                "value": level.resolved,
                "n": level.disagreements,
                "notes": "",
            }
        )
    elif table == "pairs":
        for row in level.pairs:
            rows.append(
                {
                    "level": level.level,
                    "coder_a": row.first,
                    "coder_b": row.second,
                    "kappa": row.kappa.value,
                    "percent_agreement": row.percent.value,
                    "disagreements": row.disagreements,
                    "notes": _notes(kappa=row.kappa, percent=row.percent),
                }
            )
    elif table == "policies":
        for row in level.policies:
            record = {"level": level.level, "policy": row.number, "title": row.title, "clauses": row.clauses}
            record |= {f"coded_clauses_{layer.key}": n for layer, n in zip(layers, row.coded, strict=True)}
            record |= {
                "disagreeing_clauses": row.disagreements,
                "resolved_clauses": row.resolved,
                "percent_agreement": row.percent.value,
                "krippendorff_alpha": row.alpha.value,
            }
            if character:
                record["character_kappa"] = row.kappa.value if row.kappa else None
            record["notes"] = _notes(percent=row.percent, alpha=row.alpha, character_kappa=row.kappa)
            rows.append(record)
    else:
        raise ValueError(f"unknown table {table!r}; use one of {', '.join(TABLES)}")
    return rows


def table_records(report: Report, table: str) -> list[dict[str, Any]]:
    """Rows of ``table`` (nodes, overall, pairs, policies) over every level of the report."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; use one of {', '.join(TABLES)}")
    return [record for level in report.levels for record in _records_for_level(report, level, table)]


# --- drill-down: the clauses behind a figure ------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """A stretch of a clause and the nodes a layer coded on it (``focus``: one of them is
    the node being compared)."""

    start: int
    text: str
    nodes: tuple[str, ...]
    focus: bool


@dataclass
class LayerView:
    key: str
    is_consensus: bool
    segments: list[Segment]
    nodes: list[str]  # every node this layer applied in the clause (as coded)
    applied: bool  # applied the compared node (rolled up at tree level)


@dataclass
class UnitView:
    """One disagreement: one clause, one compared node, each layer's coding side by side."""

    policy_number: int
    policy_title: str
    clause_number: int
    clause_start: int
    clause_text: str
    node: NodeInfo
    scope: str
    level: str
    layers: list[LayerView]
    consensus: LayerView | None
    decision: dict[str, Any] | None
    code_nodes: list[NodeInfo]

    @property
    def label(self) -> str:
        return f"{self.policy_number}-{self.clause_number}"

    @property
    def clause_end(self) -> int:
        return self.clause_start + len(self.clause_text)

    @property
    def dom_id(self) -> str:
        return f"unit-{self.level}-{self.policy_number}-{self.clause_number}-{self.node.id}"


def _segments(
    clause_start: int, text: str, refs: list[tuple[int, int, int]], focus: set[int], names: dict[int, str]
) -> list[Segment]:
    """Cut the clause at every reference boundary; each piece knows the nodes covering it."""
    end = clause_start + len(text)
    bounds = sorted({clause_start, end, *(s for _, s, _ in refs), *(e for _, _, e in refs)})
    segments = []
    for left, right in pairwise(bounds):
        covering = sorted({node for node, s, e in refs if s <= left and right <= e}, key=lambda n: names.get(n, ""))
        segments.append(
            Segment(
                start=left,
                text=text[left - clause_start : right - clause_start],
                nodes=tuple(names.get(n, "?") for n in covering),
                focus=any(n in focus for n in covering),
            )
        )
    return segments


DECISION_TEXT = {"both": "accepted every coder's coding", "neither": "neither (not coded)", "anew": "coded anew"}


def _layer_view(
    key: str,
    is_consensus: bool,
    own: list[tuple[int, int, int]],
    start: int,
    text: str,
    scope_ids: set[int],
    names: dict[int, str],
) -> LayerView:
    return LayerView(
        key=key,
        is_consensus=is_consensus,
        segments=_segments(start, text, own, scope_ids, names),
        nodes=sorted({names[n] for n, _, _ in own}),
        applied=any(n in scope_ids for n, _, _ in own),
    )


def describe_units(
    project: Project, selection: Selection, codebook: Codebook, level: str, units: Sequence[tuple[int, int]]
) -> list[UnitView]:
    """The views of ``units`` = (clause id, compared node id) pairs, in three queries."""
    clause_ids = sorted({clause_id for clause_id, _ in units})
    clauses = {
        row[0]: row
        for row in Clause.objects.filter(pk__in=clause_ids, policy__project=project)
        .annotate(clause_text=Substr("policy__text", F("start") + 1, F("end") - F("start")))
        .values_list("pk", "policy__number", "policy__title", "number", "start", "clause_text")
    }
    refs: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    layer_of = {layer.user_id: i for i, layer in enumerate(selection.layers) if not layer.is_consensus}
    consensus_index = next((i for i, layer in enumerate(selection.layers) if layer.is_consensus), None)
    for coder_id, is_consensus, clause_id, node_id, start, end in (
        Reference.objects.filter(Q(consensus=True) | Q(coder_id__in=list(layer_of)), clause_id__in=clause_ids)
        .order_by("start", "end", "id")
        .values_list("coder_id", "consensus", "clause_id", "node_id", "start", "end")
    ):
        layer = -1 if is_consensus else layer_of[coder_id]
        refs.setdefault((clause_id, layer), []).append((node_id, start, end))
    decisions = {
        (clause_id, node_id): {
            "decision": decision,
            "text": f"accepted {accepted}" if decision == "accept" else DECISION_TEXT[decision],
            "accepted": accepted,
            "by": by,
            "at": at,
        }
        for clause_id, node_id, decision, accepted, by, at in Adjudication.objects.filter(
            clause_id__in=clause_ids, scope=SCOPES[level]
        ).values_list(
            "clause_id", "node_id", "decision", "accepted_coder__username", "decided_by__username", "decided_at"
        )
    }
    names = {pk: info.path for pk, info in codebook.nodes.items()}
    views = []
    for clause_id, node_id in units:
        if clause_id not in clauses:
            continue
        _, number, title, clause_number, start, text = clauses[clause_id]
        node = codebook.nodes[node_id]
        scope_ids = set(codebook.subtree(node_id)) if level == "tree" else {node_id}

        layers = [
            _layer_view(
                layer.key,
                layer.is_consensus,
                refs.get((clause_id, -1 if layer.is_consensus else i), []),
                start,
                text,
                scope_ids,
                names,
            )
            for i, layer in enumerate(selection.layers)
        ]
        consensus = None
        if consensus_index is None:
            consensus = _layer_view(CONSENSUS, True, refs.get((clause_id, -1), []), start, text, scope_ids, names)
        views.append(
            UnitView(
                policy_number=number,
                policy_title=title,
                clause_number=clause_number,
                clause_start=start,
                clause_text=text,
                node=node,
                scope=SCOPES[level],
                level=level,
                layers=layers,
                consensus=consensus,
                decision=decisions.get((clause_id, node_id)),
                code_nodes=sorted((codebook.nodes[pk] for pk in scope_ids), key=lambda n: n.order),
            )
        )
    return views


class NotCompared(ValidationError):
    """A drill-down filter naming a node, policy or coder pair that is not part of the
    comparison (the page answers 404, the API a field-level 400)."""


def _whole(name: str, raw: int | str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, int):
        return raw
    try:
        return int(raw)
    except ValueError:
        raise ValidationError({name: f"{name} must be a whole number, got {raw!r}."}) from None


def drilldown_filters(
    selection: Selection,
    dataset: Dataset,
    *,
    at: str | None = None,
    node: int | str | None = None,
    policy: int | str | None = None,
    pair: str | None = None,
) -> dict[str, Any]:
    """The level and the node / policy / coder pair a drill-down is about (the agreement page's
    and the API's). Raises ValidationError (keyed by the parameter) for malformed input and
    NotCompared for a node, policy or pair that is not part of this comparison."""
    at = at or selection.levels[0]
    if at not in selection.levels:
        raise ValidationError({"at": f"Level {at!r} is not part of this comparison ({', '.join(selection.levels)})."})
    data = dataset.level(at)
    filters: dict[str, Any] = {"at": at, "data": data, "column": None, "policy_pos": None, "pair": None, "title": []}
    node_id = _whole("node", node)
    if node_id is not None:
        if node_id not in data.column_index:
            raise NotCompared({"node": "No such node at this level."})
        filters["column"] = data.column_index[node_id]
        filters["node"] = node_id
        filters["title"].append(dataset.codebook.nodes[node_id].path)
    number = _whole("policy", policy)
    if number is not None:
        match = dataset.policies.index[dataset.policies["number"] == number]
        if not len(match):
            raise NotCompared({"policy": f"Policy {number} is not among the compared policies."})
        filters["policy_pos"] = int(dataset.policies.loc[match[0], "pos"])
        filters["policy"] = number
        filters["title"].append(f"policy {number}")
    if pair:
        keys = [key.strip() for key in pair.split(",")]
        indexes = [i for key in keys for i, layer in enumerate(selection.layers) if layer.key == key]
        if len(keys) != 2 or len(indexes) != 2 or indexes[0] == indexes[1]:
            raise NotCompared({"pair": "The pair must name two of the compared coders."})
        filters["pair"] = (min(indexes), max(indexes))
        filters["pair_text"] = pair
        filters["title"].append(f"{keys[0]} vs {keys[1]}")
    return filters


def disagreement_records(
    selection: Selection, dataset: Dataset, level: str, units: npt.NDArray[np.int64]
) -> list[dict[str, Any]]:
    """Flat rows of disagreements (export of a drill-down): which layer applied the node where."""
    data = dataset.level(level)
    clauses = dataset.clauses
    policies = dataset.policies.set_index("pos")
    decided = dataset.adjudications[dataset.adjudications["scope"] == SCOPES[level]]
    decision_of = {
        (c, n): d for c, n, d in zip(decided["clause_id"], decided["node_id"], decided["decision"], strict=True)
    }
    rows = []
    for unit, column in units.tolist():
        clause = clauses.iloc[unit]
        node = dataset.codebook.nodes[data.columns[column]]
        policy = policies.loc[int(clause["pos"])]
        record = {
            "level": level,
            "clause": f"{int(policy['number'])}-{int(clause['number'])}",
            "policy_title": policy["title"],
            "node": node.path,
        }
        record |= {
            f"applied_{layer.key}": bool(data.applied[i, unit, column]) for i, layer in enumerate(selection.layers)
        }
        record["decision"] = decision_of.get((int(clause["clause_id"]), node.id), "")
        rows.append(record)
    return rows


def records_csv(records: list[dict[str, Any]]) -> str:
    """Rows as CSV text (empty cells for figures that are not computable)."""
    out = io.StringIO()
    if records:
        writer = csv.DictWriter(out, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    return out.getvalue()


def records_xlsx(records: list[dict[str, Any]], sheet: str) -> bytes:
    """Rows as an .xlsx workbook with one sheet (openpyxl through pandas)."""
    out = io.BytesIO()
    pd.DataFrame.from_records(records).to_excel(out, index=False, sheet_name=sheet[:31], engine="openpyxl")
    return out.getvalue()
