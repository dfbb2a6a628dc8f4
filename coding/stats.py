"""Dashboard reads: distributions, crosstabs, trends, word frequencies and text search.

Counting reads ``ReferenceTally`` (references per node, policy and layer, kept current by
database triggers), in ONE aggregate query per table that returns a tidy DataFrame; the
shares, roll-ups and layouts are then pure pandas over those few rows. Nothing here queries
per node or per policy.

Vocabulary:

* A **tree node** is a root of the codebook; a **sub-node** a child of one. Deeper nodes roll
  up into their level-2 ancestor: their references count for it and for its tree node.
* A **layer** is one coder's references (the tally's ``layer`` is the coder's user id) or the
  consensus layer (``CONSENSUS_LAYER``). Several layers are read summed (references add up, a
  policy counts once) or side by side.
* **Shares** are fractions computed from counts: a tree node's of all references, a
  sub-node's of its tree node's references, a crosstab cell's of its row, column or total.
  They are never rounded here; templates show percentages to one decimal.

Who may read which layer is decided by ``resolve_layers`` from ``ProjectAccess``: with blind
coding a coder reads only their own layer.

Beside the side-by-side distribution, ``node_agreement`` gives each row's Krippendorff's alpha
across the chosen layers through ``agreement_data`` (the agreement page's rules). The
dashboards' parameters (``PolicyFilter``, attributes, search patterns) are defined in
``coding/dashboard_query.py`` and offered here too.
"""

from __future__ import annotations

import bisect
import json
import logging
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.db.models import F, QuerySet, TextField
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Substr

from coding import agreement_data, regex_child
from coding.access import ProjectAccess
from coding.dashboard_query import ALL_POLICIES, PolicyFilter, compile_query
from coding.dashboard_query import ATTRIBUTES as ATTRIBUTES
from coding.dashboard_query import MAX_QUERY_LENGTH as MAX_QUERY_LENGTH
from coding.dashboard_query import SEARCH_MODES as SEARCH_MODES
from coding.dashboard_query import attribute_label as attribute_label
from coding.dashboard_query import check_attribute as check_attribute
from coding.models import ALL_CODERS_LAYER, CONSENSUS_LAYER, Clause, Membership, Node, Policy, Project, Role

NONE_VALUE = "(none)"
ALL_CODERS = "coders"
CONSENSUS = "consensus"
PERCENT_MODES = ("count", "row", "column", "total")
MEASURES = ("references", "policies")


# --- codebook ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodebookNode:
    """A node as dashboards see it. ``level`` is 1 for tree nodes, 2 for sub-nodes and more for
    deeper nodes, which count in ``sub_id`` (their level-2 ancestor) and ``tree_id``."""

    id: int
    name: str
    path: str
    level: int
    tree_id: int
    sub_id: int | None
    colour: str
    order: int


def codebook(project: Project) -> list[CodebookNode]:
    """The project's nodes in codebook order (depth first by position), from one query."""
    rows = list(
        Node.objects.filter(project=project).order_by("position", "id").values_list("id", "parent_id", "name", "colour")
    )
    children: dict[int | None, list[tuple[int, str, str]]] = {}
    for pk, parent_id, name, colour in rows:
        children.setdefault(parent_id, []).append((pk, name, colour))
    result: list[CodebookNode] = []

    def walk(parent_id: int | None, trail: tuple[str, ...], level: int, tree_id: int | None, sub_id: int | None):
        for pk, name, colour in children.get(parent_id, []):
            tree = tree_id or pk
            sub = sub_id or (pk if level == 2 else None)
            path = (*trail, name)
            result.append(CodebookNode(pk, name, " > ".join(path), level, tree, sub, colour, len(result)))
            walk(pk, path, level + 1, tree, sub)

    walk(None, (), 1, None, None)
    return result


# --- layers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One selectable layer: ``key`` as it appears in URLs ("12", "coders", "consensus")."""

    key: str
    label: str
    ids: tuple[int, ...]  # its ReferenceTally layers

    @property
    def is_consensus(self) -> bool:
        return self.key == CONSENSUS


@dataclass(frozen=True)
class LayerSelection:
    layers: tuple[Layer, ...]
    side_by_side: bool = False

    @property
    def label(self) -> str:
        return " + ".join(layer.label for layer in self.layers)

    @property
    def keys(self) -> list[str]:
        return [layer.key for layer in self.layers]


def available_layers(access: ProjectAccess) -> list[Layer]:
    """The layers this user may read: with blind coding a coder has only their own; reviewers
    (and everyone when blind coding is off) have every member's layer, all coders together,
    and the consensus layer. One query."""
    user = access.user
    if not access.sees_all_references:
        return [Layer(str(user.pk), f"{user.get_username()} (you)", (user.pk,))]
    members = (
        Membership.objects.filter(project=access.project)
        .select_related("user")
        .order_by("user__username")
        .values_list("user_id", "user__username", "role")
    )
    coders = [(pk, name) for pk, name, role in members if role == Role.CODER]
    others = [(pk, name) for pk, name, role in members if role != Role.CODER]
    layers = [Layer(ALL_CODERS, "All coders", (ALL_CODERS_LAYER,))]
    for pk, name in coders + others:
        layers.append(Layer(str(pk), f"{name} (you)" if pk == user.pk else name, (pk,)))
    if user.is_superuser and not any(layer.key == str(user.pk) for layer in layers):
        layers.append(Layer(str(user.pk), f"{user.get_username()} (you)", (user.pk,)))
    layers.append(Layer(CONSENSUS, "Consensus", (CONSENSUS_LAYER,)))
    return layers


def default_layer_keys(access: ProjectAccess) -> list[str]:
    """A coder starts on their own layer, a reviewer on all coders summed."""
    return [ALL_CODERS] if access.can_review else [str(access.user.pk)]


def resolve_layers(
    access: ProjectAccess,
    keys: Sequence[str],
    *,
    side_by_side: bool = False,
    available: Sequence[Layer] | None = None,
) -> LayerSelection:
    """The layers named by ``keys`` (default: ``default_layer_keys``), checked against what
    the user may read (``available``: ``available_layers(access)`` when not given). Raises
    PermissionDenied for a layer the user may not see (blind coding), ValidationError for a
    key that names no layer of the project."""
    keys = list(dict.fromkeys(k for k in keys if k)) or default_layer_keys(access)
    available = {layer.key: layer for layer in (available if available is not None else available_layers(access))}
    chosen = []
    for key in keys:
        if key not in available:
            if not access.sees_all_references and (key in (ALL_CODERS, CONSENSUS) or key.isdigit()):
                raise PermissionDenied("This project codes blind: you see only your own layer's figures.")
            raise ValidationError(f"{key!r} is not a layer of this project; use a coder, 'coders' or 'consensus'.")
        chosen.append(available[key])
    return _selection(chosen, side_by_side)


def _selection(chosen: list[Layer], side_by_side: bool) -> LayerSelection:
    if not side_by_side and any(layer.key == ALL_CODERS for layer in chosen):
        # Summed, "All coders" already holds every coder's references: adding one coder's
        # layer again would count them twice.
        chosen = [layer for layer in chosen if layer.key in (ALL_CODERS, CONSENSUS)]
    return LayerSelection(tuple(chosen), side_by_side=side_by_side and len(chosen) > 1)


# --- policy filters ------------------------------------------------------------------------


def _json_array_any(column: str, values: Sequence[str]) -> RawSQL:
    """True when the JSON array in ``column`` holds one of ``values``: no portable ORM lookup exists."""
    marks = ", ".join(["%s"] * len(values))
    if connection.vendor == "postgresql":
        sql = f"EXISTS (SELECT 1 FROM jsonb_array_elements_text({column}) AS d(value) WHERE d.value IN ({marks}))"
    else:
        sql = f"EXISTS (SELECT 1 FROM json_each({column}) AS d WHERE d.value IN ({marks}))"
    return RawSQL(sql, list(values))  # noqa: S611 -- values are parameters; column is ours


def policies(project: Project, filters: PolicyFilter = ALL_POLICIES) -> QuerySet[Policy]:
    """The project's policies that pass ``filters``."""
    qs = Policy.objects.filter(project=project)
    if filters.jurisdictions:
        qs = qs.filter(jurisdiction__in=filters.jurisdictions)
    if filters.potency_levels:
        qs = qs.filter(potency_level__in=filters.potency_levels)
    # Dates are ISO text of their precision ("2011", "2021-04-28"), so years compare as text.
    if filters.year_from is not None:
        qs = qs.filter(release_date__gte=f"{filters.year_from:04d}")
    if filters.year_to is not None:
        qs = qs.filter(release_date__lt=f"{filters.year_to + 1:04d}").exclude(release_date="")
    if filters.numbers:
        qs = qs.filter(number__in=filters.numbers)
    if filters.departments:
        qs = qs.alias(_in_department=_json_array_any("coding_policy.release_departments", filters.departments))
        qs = qs.filter(_in_department=True)
    by_key: dict[str, list[str]] = {}
    for key, value in filters.attributes:
        by_key.setdefault(key, []).append(value)
    for n, (key, values) in enumerate(by_key.items()):
        # Cast: SQLite reads a bare KeyTextTransform's right-hand side as JSON.
        text = Cast(KeyTextTransform(key, "attributes"), TextField())
        qs = qs.alias(**{f"_attr{n}": text}).filter(**{f"_attr{n}__in": values})
    return qs


@dataclass(frozen=True)
class FilterChoices:
    jurisdictions: list[str]
    potency_levels: list[str]
    departments: list[str]
    years: list[int]
    attribute_keys: list[str]


def filter_choices(project: Project) -> FilterChoices:
    """The values the project's policies take, for filter and crosstab pickers. Two queries."""
    jurisdictions, levels, departments, years = set(), set(), set(), set()
    rows = (
        Policy.objects.filter(project=project)
        .values_list("jurisdiction", "potency_level", Substr("release_date", 1, 4), "release_departments")
        .distinct()
    )
    for jurisdiction, level, year, depts in rows:
        jurisdictions.add(jurisdiction)
        levels.add(level)
        if year:
            years.add(int(year))
        departments.update(d for d in depts or [] if isinstance(d, str))
    if connection.vendor == "postgresql":
        sql = "SELECT DISTINCT jsonb_object_keys(attributes) FROM coding_policy WHERE project_id = %s"
    else:
        sql = "SELECT DISTINCT k.key FROM coding_policy, json_each(coding_policy.attributes) AS k WHERE project_id = %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [project.pk])
        keys = sorted(row[0] for row in cursor.fetchall())
    return FilterChoices(
        jurisdictions=sorted(j for j in jurisdictions if j),
        potency_levels=sorted(level for level in levels if level),
        departments=sorted(departments),
        years=sorted(years),
        attribute_keys=keys,
    )


# --- the counting query ----------------------------------------------------------------------


def _policy_values_sql(project: Project, filters: PolicyFilter, by: str | None) -> tuple[str, list]:
    """SQL selecting (id, value) of the filtered policies, each pair once; a policy with
    several departments gives one row per department, one without any a NULL value."""
    qs = policies(project, filters).order_by()
    if by is None or by == "department":
        qs = qs.values("id")
        sql, params = qs.query.sql_with_params()
        if by is None:
            return sql, list(params)
        if connection.vendor == "postgresql":
            explode = (
                "SELECT DISTINCT p.id, d.value FROM coding_policy p "
                "LEFT JOIN LATERAL jsonb_array_elements_text(p.release_departments) AS d(value) ON true "
            )
        else:
            explode = (
                "SELECT DISTINCT p.id, d.value FROM coding_policy p "
                "LEFT JOIN json_each(p.release_departments) AS d ON true "
            )
        return explode + f"WHERE p.id IN ({sql})", list(params)
    if by == "year":
        value = Substr("release_date", 1, 4)
    elif by.startswith("attr:"):
        value = KeyTextTransform(by[len("attr:") :], "attributes")
    else:
        value = F(by)
    sql, params = qs.values("id").annotate(value=value).values("id", "value").query.sql_with_params()
    return sql, list(params)


def _fetch(sql: str, params: list) -> list[tuple]:
    """Run one query and fetch its rows. (PostgreSQL's JIT, which spent seconds compiling
    these aggregates, is off for the app's connections: see DATABASES in settings.)"""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def tally_counts(
    project: Project,
    selection: LayerSelection,
    filters: PolicyFilter = ALL_POLICIES,
    *,
    by: str | None = None,
    nodes: Sequence[CodebookNode] | None = None,
) -> pd.DataFrame:
    """References and policies coded per tree node and sub-node, from ONE query.

    Returns a tidy DataFrame with columns ``layer`` (the layer's key when side by side, else
    "sum"), ``level`` (0 = all nodes, 1 = a tree node, 2 = a sub-node; the level-2 row with
    ``sub_id`` 0 holds what was coded at the tree node itself), ``tree_id``, ``sub_id``,
    ``value`` (only when ``by`` names a policy attribute), ``references`` and ``policies``
    (distinct policies coded). With ``by``, rows whose ``value`` is None are the totals across
    values (a policy in two departments counts once there); a policy without the attribute
    has the value "(none)". Groups with nothing coded have no row.
    """
    nodes = list(nodes) if nodes is not None else codebook(project)
    columns = ["layer", "level", "tree_id", "sub_id"] + (["value"] if by else []) + ["references", "policies"]
    if not nodes or not selection.layers:
        return pd.DataFrame(columns=columns)
    mapping = ", ".join(["(%s, %s, %s)"] * len(nodes))
    mapping_params = [p for n in nodes for p in (n.id, n.tree_id, n.sub_id or 0)]
    policy_sql, policy_params = _policy_values_sql(project, filters, None)
    policy_clause = f" AND t.policy_id IN ({policy_sql})" if not filters.is_empty else ""
    policy_params = policy_params if not filters.is_empty else []
    if by is None:
        return _node_counts(selection, nodes, policy_clause, policy_params, columns)
    # Nodes alone in their bucket (a tree node itself, a sub-node without descendants) and
    # nodes sharing one (a sub-node and the deeper nodes rolled up into it).
    bucket_size = Counter((n.tree_id, n.sub_id) for n in nodes)
    alone = [n.id for n in nodes if bucket_size[(n.tree_id, n.sub_id)] == 1]
    shared = [n.id for n in nodes if bucket_size[(n.tree_id, n.sub_id)] > 1]

    # Counting distinct policies needs no COUNT(DISTINCT): each step below holds one row per
    # policy in its group, so COUNT(*) counts policies and every step is a plain GROUP BY.
    # b: one row per (layer, tree node, sub-node, policy). Tally rows are that already, except
    # when several layers are summed or several nodes share a bucket: then they are summed.
    # Layers are numbered in the query (integers group faster than text) and named after it.
    def bucket_selects(number: int, layer_ids: Sequence[int]) -> tuple[list[str], list]:
        selects, params = [], []
        marks = ", ".join(["%s"] * len(layer_ids))
        groups = [(alone, False), (shared, True)] if len(layer_ids) == 1 else [([n.id for n in nodes], True)]
        for node_ids, grouped in groups:
            if not node_ids:
                continue
            refs = "SUM(t.reference_count)" if grouped else "t.reference_count"
            selects.append(
                f"SELECT {number:d} AS layer, m.column2 AS tree_id, m.column3 AS sub_id, t.policy_id, "
                f"{refs} AS refs FROM coding_referencetally t JOIN (VALUES {mapping}) AS m ON m.column1 = t.node_id "
                f"WHERE t.layer IN ({marks}) AND t.node_id IN ({', '.join(['%s'] * len(node_ids))}){policy_clause}"
                + (" GROUP BY m.column2, m.column3, t.policy_id" if grouped else "")
            )
            params += [*mapping_params, *layer_ids, *node_ids, *policy_params]
        return selects, params

    params: list = []
    parts: list[str] = []
    if selection.side_by_side:
        names = [layer.key for layer in selection.layers]
        for number, layer in enumerate(selection.layers):
            selects, ps = bucket_selects(number, layer.ids)
            parts += selects
            params += ps
    else:
        names = ["sum"]
        parts, params = bucket_selects(0, list(dict.fromkeys(i for layer in selection.layers for i in layer.ids)))
    b_sql = " UNION ALL ".join(parts)
    ctes = [
        f"b AS ({b_sql})",
        "bt AS (SELECT layer, tree_id, policy_id, SUM(refs) AS refs FROM b GROUP BY layer, tree_id, policy_id)",
        "ba AS (SELECT layer, policy_id, SUM(refs) AS refs FROM bt GROUP BY layer, policy_id)",
    ]
    # (source, level and keys selected, keys grouped): all nodes, tree nodes, sub-nodes.
    groupings = [
        ("ba", "0, 0, 0", "layer"),
        ("bt", "1, tree_id, 0", "layer, tree_id"),
        ("b", "2, tree_id, sub_id", "layer, tree_id, sub_id"),
    ]
    agg = "SUM(refs), COUNT(*)"
    selects = [f"SELECT layer, {keys}, {agg} FROM {src} GROUP BY {group}" for src, keys, group in groupings]
    if by is not None:
        # The policies' values joined as a subquery, not a CTE: PostgreSQL then knows policy ids
        # are unique, estimates the joins right and does not JIT-compile a cheap query.
        values_sql, values_params = _policy_values_sql(project, filters, by)
        selects = [
            f"SELECT layer, {keys}, 1, NULL, {agg} FROM {src} GROUP BY {group}" for src, keys, group in groupings
        ] + [
            f"SELECT layer, {keys}, 0, pv.value, {agg} FROM {src} JOIN ({values_sql}) AS pv ON pv.id = {src}.policy_id "
            f"GROUP BY {group}, pv.value"
            for src, keys, group in groupings
        ]
        params += values_params * len(groupings)
    sql = "WITH " + ", ".join(ctes) + " " + " UNION ALL ".join(selects)
    rows = _fetch(sql, params)
    if by is None:
        frame = pd.DataFrame(rows, columns=columns)
    else:
        frame = pd.DataFrame(rows, columns=[*columns[:4], "is_total", *columns[4:]])
        values = [
            None if total else (NONE_VALUE if pd.isna(v) or v == "" else str(v))
            for total, v in zip(frame["is_total"], frame["value"], strict=True)
        ]
        frame["value"] = pd.Series(values, dtype=object)
        frame = frame.drop(columns=["is_total"])
    for column in ("level", "tree_id", "sub_id", "references", "policies"):
        frame[column] = frame[column].astype("int64")
    frame["layer"] = [names[number] for number in frame["layer"]]
    return frame


# Bits used in each BIGINT word of the row masks below (the sign bit stays clear).
_WORD_BITS = 62


def _node_counts(
    selection: LayerSelection, nodes: Sequence[CodebookNode], policy_clause: str, policy_params: list, columns: list
) -> pd.DataFrame:
    """``tally_counts`` without ``by``: two aggregates over the same tally rows in ONE query.

    Distinct policies per tree node (and per sub-node sharing its row with deeper nodes) would
    need the tally rows grouped by (layer, tree node, policy): with several layers side by
    side that was a few hundred thousand rows hashed twice and spilled to disk, most of the
    time the page took. Instead each tally row is read once into two small groupings:

    * per (layer, node): references, and policies (a tally row is one policy at one node, so
      COUNT(*) counts them); enough for every row of the table a single node makes;
    * per (layer, policy): references, and a bit mask of the table rows the policy is coded
      in (tree nodes; sub-nodes that share their row with deeper nodes), OR-ed over its
      tally rows. Counting policies per bit gives the distinct policies of those rows, and
      the rows per layer the total.
    """
    if selection.side_by_side:
        outputs = [(layer.key, tuple(dict.fromkeys(layer.ids))) for layer in selection.layers]
    else:
        outputs = [("sum", tuple(dict.fromkeys(i for layer in selection.layers for i in layer.ids)))]
    all_ids = [i for _, ids in outputs for i in ids]
    node_marks = ", ".join(["%s"] * len(nodes))
    where = f"t.layer IN ({', '.join(['%s'] * len(all_ids))}) AND t.node_id IN ({node_marks}){policy_clause}"
    where_params = [*all_ids, *(n.id for n in nodes), *policy_params]
    if all(len(ids) == 1 for _, ids in outputs) and len(set(all_ids)) == len(all_ids):
        # Each output layer is one tally layer: its rows are already one per node and policy.
        source = (
            "SELECT t.layer, t.node_id, t.policy_id, t.reference_count AS refs "
            f"FROM coding_referencetally t WHERE {where}"
        )
        source_params = where_params
        names = {ids[0]: name for name, ids in outputs}
    else:
        # Layers summed (or overlapping): one row per (output layer, node, policy) first.
        layer_map = ", ".join(["(%s, %s)"] * len(all_ids))
        source = (
            f"SELECT l.column2 AS layer, t.node_id, t.policy_id, SUM(t.reference_count) AS refs "
            f"FROM coding_referencetally t JOIN (VALUES {layer_map}) AS l ON l.column1 = t.layer "
            f"WHERE {where} GROUP BY l.column2, t.node_id, t.policy_id"
        )
        source_params = [p for number, (_, ids) in enumerate(outputs) for i in ids for p in (i, number)]
        source_params += where_params
        names = {number: name for number, (name, _) in enumerate(outputs)}

    trees = [n for n in nodes if n.level == 1]
    tree_bit = {n.id: i for i, n in enumerate(trees)}
    bucket_size = Counter((n.tree_id, n.sub_id) for n in nodes)
    shared = list(dict.fromkeys((n.tree_id, n.sub_id) for n in nodes if bucket_size[(n.tree_id, n.sub_id)] > 1))
    shared_bit = {bucket: i for i, bucket in enumerate(shared)}
    # Mask words: tree nodes' bits first, then the shared sub-node rows', each in its own words
    # so that within one word a node sets at most one bit (SQLite ORs them by SUM(DISTINCT ...)).
    tree_words = -(-len(trees) // _WORD_BITS)
    words = tree_words + -(-len(shared) // _WORD_BITS)
    bits: list[tuple[int, int]] = [(i // _WORD_BITS, i % _WORD_BITS) for i in range(len(trees))]
    bits += [(tree_words + i // _WORD_BITS, i % _WORD_BITS) for i in range(len(shared))]

    def node_words(node: CodebookNode) -> list[int]:
        values = [0] * words
        word, bit = bits[tree_bit[node.tree_id]]
        values[word] |= 1 << bit
        if (node.tree_id, node.sub_id) in shared_bit:
            word, bit = bits[len(trees) + shared_bit[(node.tree_id, node.sub_id)]]
            values[word] |= 1 << bit
        return values

    mapping = ", ".join([f"({', '.join(['%s'] * (words + 1))})"] * len(nodes))
    mapping_params = [p for n in nodes for p in (n.id, *node_words(n))]
    # SQLite has no BIT_OR; within one word the nodes' values are distinct powers of two, or
    # equal for the same row, so the sum of the distinct values is their OR.
    bit_or = "BIT_OR({})" if connection.vendor == "postgresql" else "SUM(DISTINCT {})"
    masks = ", ".join(bit_or.format(f"CAST(m.column{w + 2} AS BIGINT)") + f" AS w{w}" for w in range(words))
    counts = ", ".join(f"COUNT(CASE WHEN (p.w{word} & {1 << bit}) <> 0 THEN 1 END)" for word, bit in bits)
    padding = ", ".join(["NULL"] * len(bits))
    sql = (
        f"SELECT p.layer, 0, 0, SUM(p.refs), COUNT(*){', ' + counts if counts else ''} FROM ("
        f"SELECT s.layer, s.policy_id, SUM(s.refs) AS refs, {masks} FROM ({source}) AS s "
        f"JOIN (VALUES {mapping}) AS m ON m.column1 = s.node_id GROUP BY s.layer, s.policy_id"
        ") AS p GROUP BY p.layer "
        f"UNION ALL SELECT s.layer, 1, s.node_id, SUM(s.refs), COUNT(*){', ' + padding if padding else ''} "
        f"FROM ({source}) AS s GROUP BY s.layer, s.node_id"
    )
    rows = _fetch(sql, [*source_params, *mapping_params, *source_params])

    by_node: dict[tuple[str, int], tuple[int, int]] = {}
    per_layer: dict[str, tuple[int, int, list[int]]] = {}
    for layer, kind, key, refs, count, *bit_counts in rows:
        if kind == 0:
            per_layer[names[layer]] = (int(refs), int(count), [int(c) for c in bit_counts])
        else:
            by_node[(names[layer], int(key))] = (int(refs), int(count))
    records = []
    for name, (refs, count, bit_counts) in per_layer.items():
        records.append((name, 0, 0, 0, refs, count))
        refs_in: Counter[tuple[int, int | None]] = Counter()
        for n in nodes:
            refs_in[(n.tree_id, None)] += by_node.get((name, n.id), (0, 0))[0]
            refs_in[(n.tree_id, n.sub_id)] += by_node.get((name, n.id), (0, 0))[0] if n.level > 1 else 0
        for tree in trees:
            if refs_in[(tree.id, None)]:
                records.append((name, 1, tree.id, 0, refs_in[(tree.id, None)], bit_counts[tree_bit[tree.id]]))
        for n in nodes:
            bucket = (n.tree_id, n.sub_id)
            if bucket in shared_bit:
                if n.id == n.sub_id and refs_in[bucket]:
                    records.append(
                        (name, 2, n.tree_id, n.sub_id, refs_in[bucket], bit_counts[len(trees) + shared_bit[bucket]])
                    )
            elif (name, n.id) in by_node:
                # A node alone in its row: a tree node itself (sub_id 0) or a sub-node without deeper nodes.
                records.append((name, 2, n.tree_id, n.sub_id or 0, *by_node[(name, n.id)]))
    frame = pd.DataFrame(records, columns=columns)
    for column in ("level", "tree_id", "sub_id", "references", "policies"):
        frame[column] = frame[column].astype("int64")
    return frame


# --- distribution, Table 3, side by side ------------------------------------------------------


@dataclass(frozen=True)
class TableRow:
    """A row of every node table: a tree node, a sub-node, or what sits on a tree node itself."""

    level: int
    node_id: int  # the tree node's id on its "itself" row
    node: str
    path: str
    tree: str
    key: tuple[int, int, int]  # (level, tree_id, sub_id) as in ``tally_counts``; sub_id 0 = itself

    @property
    def is_itself(self) -> bool:
        return self.level == 2 and self.key[2] == 0


def table_rows(nodes: Sequence[CodebookNode], counts: pd.DataFrame) -> list[TableRow]:
    """Each tree node followed by its sub-nodes, in codebook order, every node listed even
    with nothing coded; "(at X itself)" after them when ``counts`` has references on tree
    node X itself, so that sub-node shares always sum to the whole."""
    itself = set(counts.loc[(counts["level"] == 2) & (counts["sub_id"] == 0), "tree_id"]) if len(counts) else set()
    rows: list[TableRow] = []
    for tree in (n for n in nodes if n.level == 1):
        rows.append(TableRow(1, tree.id, tree.name, tree.path, tree.name, (1, tree.id, 0)))
        for sub in (n for n in nodes if n.level == 2 and n.tree_id == tree.id):
            rows.append(TableRow(2, sub.id, sub.name, sub.path, tree.name, (2, tree.id, sub.id)))
        if tree.id in itself:
            name = f"(at {tree.name} itself)"
            rows.append(TableRow(2, tree.id, name, f"{tree.path} > {name}", tree.name, (2, tree.id, 0)))
    return rows


def _share(part: int, whole: int) -> float:
    return part / whole if whole else float("nan")


def distribution(counts: pd.DataFrame, nodes: Sequence[CodebookNode], layers: Sequence[str] = ("sum",)) -> pd.DataFrame:
    """The distribution table from ``tally_counts`` rows (without ``by``), per layer.

    Rows as ``table_rows``; columns ``layer``, ``level`` (1, 2), ``node_id``, ``node``,
    ``path``, ``tree``, ``references``, ``share`` (of all references for a tree node, of its
    tree node's references for a sub-node; NaN when that whole is 0) and ``policies`` coded.
    """
    rows = table_rows(nodes, counts)
    found = {
        (row.layer, row.level, row.tree_id, row.sub_id): (row.references, row.policies)
        for row in counts.itertuples(index=False)
    }
    records = []
    for layer in layers:
        total = found.get((layer, 0, 0, 0), (0, 0))[0]
        for row in rows:
            refs, coded = found.get((layer, *row.key), (0, 0))
            whole = total if row.level == 1 else found.get((layer, 1, row.key[1], 0), (0, 0))[0]
            records.append(
                (layer, row.level, row.node_id, row.node, row.path, row.tree, refs, _share(refs, whole), coded)
            )
    frame = pd.DataFrame(
        records, columns=["layer", "level", "node_id", "node", "path", "tree", "references", "share", "policies"]
    )
    return frame.astype(
        {"level": "int64", "node_id": "int64", "references": "int64", "policies": "int64", "share": "float64"}
    )


def totals(counts: pd.DataFrame, layers: Sequence[str] = ("sum",)) -> dict[str, tuple[int, int]]:
    """Per layer: (all references, policies coded at any node)."""
    rows = counts[counts["level"] == 0]
    if "value" in rows:
        rows = rows[rows["value"].isna()]
    found = {row.layer: (int(row.references), int(row.policies)) for row in rows.itertuples(index=False)}
    return {layer: found.get(layer, (0, 0)) for layer in layers}


def side_by_side(dist: pd.DataFrame, layers: Sequence[str]) -> pd.DataFrame:
    """The distribution with one column group per layer: ``level``, ``node_id``, ``path`` and,
    for each layer key K, ``K references``, ``K share`` and ``K policies``."""
    wide = dist[dist["layer"] == layers[0]][["level", "node_id", "path"]].reset_index(drop=True)
    for layer in layers:
        part = dist[dist["layer"] == layer].reset_index(drop=True)
        wide[f"{layer} references"] = part["references"]
        wide[f"{layer} share"] = part["share"]
        wide[f"{layer} policies"] = part["policies"]
    return wide


@dataclass(frozen=True)
class Table3Column:
    """One column of the study's Table 3: a tree node and its sub-nodes, with counts."""

    tree: str
    references: int
    share: float
    policies: int
    subs: list[tuple[str, int, float, int]]  # (name, references, share within the tree node, policies)


def table3(dist: pd.DataFrame, layer: str = "sum") -> list[Table3Column]:
    """The study's layout: one column per tree node with its share, its sub-nodes below."""
    columns: list[Table3Column] = []
    for row in dist[dist["layer"] == layer].itertuples(index=False):
        if row.level == 1:
            columns.append(Table3Column(row.node, row.references, row.share, row.policies, []))
        else:
            columns[-1].subs.append((row.node, row.references, row.share, row.policies))
    return columns


# --- agreement beside the distribution --------------------------------------------------------


@dataclass(frozen=True)
class NodeAgreement:
    """Krippendorff's alpha of the compared layers for each row of the distribution table,
    with the agreement page's rules: clause unit, only the policies every compared coder marked
    done (and, with the consensus layer, that hold consensus coding or a decision)."""

    layers: tuple[Layer, ...]
    coverage: agreement_data.Coverage
    figures: dict[tuple[int, int], agreement_data.Figure]  # by (level, node_id) of ``distribution`` rows

    def figure(self, level: int, node_id: int) -> agreement_data.Figure:
        return self.figures.get((level, node_id), agreement_data.Figure(None, "not part of the codebook any more"))


def agreement_layers(selection: LayerSelection) -> list[Layer]:
    """The layers of ``selection`` that agreement compares: each coder's and the consensus,
    not "All coders" (a sum of coders, no coder of its own)."""
    return [layer for layer in selection.layers if layer.key != ALL_CODERS]


def node_agreement(
    project: Project,
    selection: LayerSelection,
    filters: PolicyFilter = ALL_POLICIES,
    *,
    nodes: Sequence[CodebookNode] | None = None,
) -> NodeAgreement:
    """Krippendorff's alpha (nominal, clause unit) per distribution row, across the layers of
    ``selection`` (``agreement_layers``), computed by ``agreement_data`` from the policies that
    pass ``filters``. A tree node's row is the agreement page's tree-level figure for it (every
    node under it rolled up), a sub-node's without deeper nodes and a tree node's "itself" row
    are its sub-node-level figures; a sub-node's row that counts deeper nodes too gets the
    figure of those nodes rolled up into it, as its counts are.

    Who may see it is the caller's decision (the agreement page's: reviewers). About seven
    queries, whatever the number of policies or nodes; it reads every reference of the
    compared layers, so it costs seconds on a project of a million references. Raises
    ValidationError when fewer than two layers are compared.
    """
    layers = agreement_layers(selection)
    if len(layers) < 2:
        raise ValidationError(
            "Agreement compares two or more layers: choose two coders, or a coder and the consensus "
            "('All coders' is their sum, not a coder)."
        )
    nodes = list(nodes) if nodes is not None else codebook(project)
    compared = agreement_data.Selection(
        layers=tuple(
            agreement_data.Layer(layer.label, None if layer.is_consensus else layer.ids[0]) for layer in layers
        ),
        level="both",
        unit="clause",
    )
    within = None if filters.is_empty else policies(project, filters)
    dataset = agreement_data.load_dataset(project, compared, within=within)
    subtree: dict[tuple[int, int], list[int]] = {}
    for node in nodes:
        subtree.setdefault((1, node.tree_id), []).append(node.id)
        if node.sub_id is not None:
            subtree.setdefault((2, node.sub_id), []).append(node.id)
        else:
            subtree[(2, node.id)] = [node.id]  # the tree node itself
    return NodeAgreement(tuple(layers), dataset.coverage, agreement_data.group_alphas(dataset, subtree))


# --- crosstab and trend ----------------------------------------------------------------------


def value_order(values: Iterable[str], by: str) -> list[str]:
    """Column order: years ascending, other values alphabetically, "(none)" last."""
    values = list(dict.fromkeys(values))
    present = [v for v in values if v != NONE_VALUE]
    if by == "year":
        present.sort(key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))
    else:
        present.sort(key=str.casefold)
    return present + ([NONE_VALUE] if NONE_VALUE in values else [])


def crosstab(
    counts: pd.DataFrame,
    nodes: Sequence[CodebookNode],
    by: str,
    *,
    measure: str = "references",
    percent: str = "count",
    fill_years: bool = False,
) -> pd.DataFrame:
    """Nodes × values of a policy attribute (NVivo's matrix coding query).

    ``counts`` comes from ``tally_counts(..., by=by)`` (layers summed). Rows as ``table_rows``
    plus a last "Total" row (level 0); columns ``level``, ``node_id``, ``path``, one per value,
    then ``Total``: the node's figure across values, where a policy in two departments counts
    once. ``measure`` is "references" or "policies" (coded). ``percent`` turns counts into
    fractions of the row's Total ("row"), of the column's Total ("column") or of the grand
    total ("total"); "count" keeps counts. With ``fill_years`` every year from the first to the
    last gets a column, zeros included.
    """
    if measure not in MEASURES:
        raise ValidationError(f"{measure!r} is not a measure; use one of {', '.join(MEASURES)}.")
    if percent not in PERCENT_MODES:
        raise ValidationError(f"{percent!r} is not a percentage mode; use one of {', '.join(PERCENT_MODES)}.")
    values = value_order(counts["value"].dropna(), by) if len(counts) else []
    if fill_years and by == "year":
        years = [int(v) for v in values if v.isdigit()]
        if years:
            values = [str(y) for y in range(min(years), max(years) + 1)] + [v for v in values if not v.isdigit()]
    cell = {
        (row.level, row.tree_id, row.sub_id, row.value): int(getattr(row, measure))
        for row in counts.itertuples(index=False)
    }
    records = [
        [row.level, row.node_id, row.path, *(cell.get((*row.key, v), 0) for v in values), cell.get((*row.key, None), 0)]
        for row in table_rows(nodes, counts)
    ]
    records.append([0, 0, "Total", *(cell.get((0, 0, 0, v), 0) for v in values), cell.get((0, 0, 0, None), 0)])
    frame = pd.DataFrame(records, columns=["level", "node_id", "path", *values, "Total"])
    numeric = [*values, "Total"]
    frame[numeric] = frame[numeric].astype("int64")
    if percent == "count":
        return frame
    data = frame[numeric].astype("float64")
    if percent == "row":
        data = data.div(data["Total"].where(data["Total"] != 0), axis=0)
    elif percent == "column":
        last = data.iloc[-1]
        data = data.div(last.where(last != 0), axis=1)
    else:
        grand = data.iloc[-1]["Total"]
        data = data / grand if grand else data * float("nan")
    frame[numeric] = data
    return frame


# --- word frequency --------------------------------------------------------------------------

# The default stop words: Chinese function words and the boilerplate of legal texts, and
# common English function words. A project replaces the whole list with its own (Project.stopwords).
_STOPWORDS_ZH = """
的 了 和 与 及 或 是 在 为 以 对 将 由 按 其 中 之 于 并 等 也 都 而 从 被 把 这 那 有 个 各 该 本 所 上 下
不 就 可 应 又 如 若 即 则 但 向 给 至 使 要 得 地 着 过 们 我 你 他 她 它 我们 他们 以及 以上 以下 以外 之间
其他 其中 有关 相关 应当 可以 必须 不得 进行 通过 根据 按照 依照 依据 为了 关于 对于 由于 因此 如果 并且 或者
以便 以及 之一 一些 一个 这些 那些 有的 没有 第 条 款 项 章 节 本条 本法 本条例 本规定 本办法 规定 条例 办法
"""
_STOPWORDS_EN = """
a about above after again all also am an and any are as at be because been before being below between both but
by can could did do does doing down during each few for from further had has have having he her here hers him
his how i if in into is it its itself just may me more most must my no nor not now of off on once only or other
our ours out over own same shall she should so some such than that the their theirs them then there these they
this those through to too under until up upon very was we were what when where which while who whom why will
with within would you your article articles chapter section shall
"""
DEFAULT_STOPWORDS = frozenset(_STOPWORDS_ZH.split()) | frozenset(_STOPWORDS_EN.split())
_LETTER = re.compile(r"[^\W\d_]")


def project_stopwords(project: Project) -> list[str]:
    """The project's stop-word list, or the default one when it has none of its own."""
    if project.stopwords is None:
        return sorted(DEFAULT_STOPWORDS)
    return list(project.stopwords)


def tokens(text: str) -> list[str]:
    """The words of a Chinese and/or English text: jieba's segmentation (its dictionary ships
    in the package, so this works offline), Latin words lower-cased, and tokens without a
    letter (numbers, punctuation, white space) dropped."""
    import jieba  # imported on first use: loading its dictionary takes about a second

    jieba.setLogLevel(logging.WARNING)
    return [token.lower() for token in jieba.lcut(text) if _LETTER.search(token)]


def word_frequency(
    texts: Iterable[str],
    *,
    stopwords: Iterable[str] = DEFAULT_STOPWORDS,
    min_length: int = 2,
    top: int = 100,
    threshold: float = 0.0,
) -> pd.DataFrame:
    """Word frequencies over ``texts`` (one per policy), as NVivo's word frequency query.

    Words shorter than ``min_length`` characters and stop words (compared lower-cased) are not
    counted. Columns: ``rank``, ``word``, ``count``, ``share`` (the word's count over all
    counted words, NVivo's "weighted percentage", as a fraction) and ``policies`` (how many
    texts contain it). Words whose share is under ``threshold`` percent are dropped (the
    study's screening step), then the ``top`` most frequent are kept; ties in count are broken
    alphabetically so the result is stable.
    """
    if min_length < 1:
        raise ValidationError("The minimum word length must be at least 1.")
    if top < 1:
        raise ValidationError("Top N must be at least 1.")
    if not 0 <= threshold <= 100:
        raise ValidationError("The threshold is a percentage between 0 and 100.")
    stop = {word.lower() for word in stopwords}
    counts: Counter[str] = Counter()
    documents: Counter[str] = Counter()
    for text in texts:
        words = [w for w in tokens(text) if len(w) >= min_length and w not in stop]
        counts.update(words)
        documents.update(set(words))
    total = sum(counts.values())
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    frame = pd.DataFrame(rows, columns=["word", "count"])
    frame["share"] = frame["count"] / total if total else 0.0
    frame["policies"] = [documents[w] for w in frame["word"]]
    frame = frame[frame["share"] * 100 >= threshold].head(top).reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame.astype({"rank": "int64", "count": "int64", "share": "float64", "policies": "int64"})


def policy_texts(project: Project, filters: PolicyFilter = ALL_POLICIES) -> list[str]:
    """The texts of the filtered policies, in policy order, from one query."""
    return list(policies(project, filters).exclude(text="").order_by("number").values_list("text", flat=True))


# --- text search -----------------------------------------------------------------------------

MAX_HITS = 5000


@dataclass(frozen=True)
class Hit:
    """One search hit: code-point offsets into its policy's text and keyword-in-context."""

    number: int
    title: str
    clause: int | None  # None when the hit lies outside every clause (a heading)
    start: int
    end: int
    before: str
    match: str
    after: str

    @property
    def label(self) -> str:
        return f"{self.number}-{self.clause}" if self.clause is not None else f"{self.number} (no clause)"

    @property
    def key(self) -> str:
        return f"{self.number}:{self.start}:{self.end}"


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    total: int
    truncated: bool  # more than MAX_HITS matched: ``hits`` holds the first MAX_HITS


# How long a regular expression may search, in CPU seconds of the child process that runs it
# (coding/regex_child.py: Python's ``re`` cannot be interrupted in the process). Starting the
# child and handing it the texts do not count; they get REGEX_LOAD_SECONDS more of wall clock.
REGEX_SECONDS = 2.0
REGEX_LOAD_SECONDS = 60.0


def _find_in_child(
    pattern: re.Pattern[str], texts: Sequence[str], limit: int, seconds: float
) -> tuple[list[list[tuple[int, int]]], int]:
    """``regex_child.find`` in a child process stopped after ``seconds`` of searching: a
    ValidationError then says so."""
    job = {"pattern": pattern.pattern, "flags": pattern.flags, "texts": list(texts), "limit": limit, "seconds": seconds}
    stopped = ValidationError(
        f"The regular expression {pattern.pattern!r} was stopped after {seconds:g} seconds of searching: on these "
        "texts it takes too long (nested repeats such as (a+)+ can backtrack for ever). Simplify it, or search "
        "fewer policies."
    )
    try:
        done = subprocess.run(  # noqa: S603 -- our program; the pattern and texts go in as data
            [sys.executable, "-I", "-S", regex_child.__file__],
            input=json.dumps(job, ensure_ascii=False).encode("utf-8"),
            capture_output=True,
            timeout=seconds + REGEX_LOAD_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise stopped from None
    if done.returncode == -signal.SIGPROF:
        raise stopped
    if done.returncode != 0:
        reason = "it ran out of memory" if b"MemoryError" in done.stderr else "it failed"
        raise ValidationError(f"The regular expression {pattern.pattern!r} could not be searched: {reason}.")
    result = json.loads(done.stdout)
    return [[(start, end) for start, end in found] for found in result["spans"]], result["total"]


def search(
    project: Project,
    query: str,
    mode: str = "phrase",
    filters: PolicyFilter = ALL_POLICIES,
    *,
    context: int = 30,
    seconds: float | None = None,
) -> SearchResult:
    """Every hit of ``query`` in the filtered policies' texts, as keyword-in-context lines with
    their ``N-M`` labels, in policy and text order. Two queries (texts, then their clauses).

    A regular expression searches for at most ``seconds`` (default ``REGEX_SECONDS``) in a
    child process; past that, or on a pattern that does not compile, a ValidationError says
    what is wrong. Words and phrases are plain text and search in the process.
    """
    pattern = compile_query(query, mode)
    candidates = policies(project, filters).exclude(text="").order_by("number")
    if mode != "regex":
        # Let the database skip texts without the phrase's longest word.
        candidates = candidates.filter(text__icontains=max(query.split(), key=len))
    texts = list(candidates.values_list("id", "number", "title", "text"))
    bodies = [text for _, _, _, text in texts]
    if mode == "regex":
        spans, total = _find_in_child(pattern, bodies, MAX_HITS, REGEX_SECONDS if seconds is None else seconds)
    else:
        spans, total = regex_child.find(pattern, bodies, MAX_HITS)
    hits: list[Hit] = []
    found = [
        (pk, number, title, text, start, end)
        # spans stop at the text where the hits ran over MAX_HITS: zip stops there too.
        for (pk, number, title, text), matches in zip(texts, spans, strict=False)
        for start, end in matches
    ]
    clauses: dict[int, list[tuple[int, int, int]]] = {}
    if found:
        policy_ids = {row[0] for row in found}
        rows = Clause.objects.filter(policy_id__in=policy_ids).order_by("policy_id", "start")
        for policy_id, number, start, end in rows.values_list("policy_id", "number", "start", "end"):
            clauses.setdefault(policy_id, []).append((start, end, number))
    starts = {pk: [s for s, _, _ in spans] for pk, spans in clauses.items()}
    for pk, number, title, text, start, end in found:
        in_policy = clauses.get(pk, [])
        i = bisect.bisect_right(starts.get(pk, []), start) - 1
        clause = in_policy[i][2] if i >= 0 and in_policy[i][0] <= start < in_policy[i][1] else None
        hits.append(
            Hit(
                number=number,
                title=title,
                clause=clause,
                start=start,
                end=end,
                before=_flat(text[max(0, start - context) : start]),
                match=_flat(text[start:end]),
                after=_flat(text[end : end + context]),
            )
        )
    return SearchResult(hits=hits, total=total, truncated=total > MAX_HITS)


def _flat(text: str) -> str:
    return " ".join(text.split()) if "\n" in text or "\t" in text else text


# --- command-line reads ----------------------------------------------------------------------


def layers_by_name(project: Project, names: Sequence[str]) -> LayerSelection:
    """Layers named as on the command line: a username, "coders" (every coder layer) or
    "consensus"; none means "coders". Summed. A username must be a member of the project."""
    from django.contrib.auth import get_user_model

    names = list(dict.fromkeys(names)) or [ALL_CODERS]
    users = dict(
        get_user_model().objects.filter(username__in=names, memberships__project=project).values_list("username", "pk")
    )
    layers = []
    for name in names:
        if name == ALL_CODERS:
            layers.append(Layer(ALL_CODERS, "All coders", (ALL_CODERS_LAYER,)))
        elif name == CONSENSUS:
            layers.append(Layer(CONSENSUS, "Consensus", (CONSENSUS_LAYER,)))
        elif name in users:
            layers.append(Layer(str(users[name]), name, (users[name],)))
        else:
            raise ValidationError(
                f"{name!r} is no member of project {project.slug}; name a coder, 'coders' or 'consensus'."
            )
    return _selection(layers, side_by_side=False)


def distribution_rows(
    project: Project, selection: LayerSelection, filters: PolicyFilter = ALL_POLICIES, *, by: str | None = None
) -> pd.DataFrame:
    """The distribution as flat rows (``manage.py distribution``): columns ``value`` (only with
    ``by``: the attribute's value, rows grouped by it in column order), ``level``, ``node`` (the
    path, "Supply-based > Talent"), ``references``, ``policies`` and ``share`` (a tree node's of
    all references, a sub-node's of its tree node's; with ``by``, within the same value)."""
    nodes = codebook(project)
    counts = tally_counts(project, LayerSelection(selection.layers), filters, by=by, nodes=nodes)
    if by is None:
        dist = distribution(counts, nodes)
        return dist[["level", "path", "references", "policies", "share"]].rename(columns={"path": "node"})
    values = value_order(counts["value"].dropna(), by) if len(counts) else []
    per_value = counts[counts["value"].notna()].assign(layer=lambda f: f["value"])
    dist = distribution(per_value, nodes, values)[["layer", "level", "path", "references", "policies", "share"]]
    return dist.rename(columns={"layer": "value", "path": "node"}).reset_index(drop=True)
