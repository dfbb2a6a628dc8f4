from fractions import Fraction

import pandas as pd
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection

from coding import access, services, stats
from coding import tally as tally_module
from coding.models import ALL_CODERS_LAYER, CONSENSUS_LAYER, Clause, Node, Policy, Reference, ReferenceTally, Role
from tests.coding import table3
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


# --- helpers ---------------------------------------------------------------------------------


def recount(project) -> set[tuple[int, int, int, int]]:
    """The tally as a recount of Reference: {(node, policy, layer, count)}."""
    frame = pd.DataFrame(
        list(Reference.objects.filter(policy__project=project).values("node_id", "policy_id", "coder_id", "consensus")),
        columns=["node_id", "policy_id", "coder_id", "consensus"],
    )
    if frame.empty:
        return set()
    frame["layer"] = frame["coder_id"].where(~frame["consensus"], CONSENSUS_LAYER).astype("int64")
    coders = frame[~frame["consensus"]].assign(layer=ALL_CODERS_LAYER)
    grouped = pd.concat([frame, coders]).groupby(["node_id", "policy_id", "layer"]).size()
    return {(int(n), int(p), int(la), int(c)) for (n, p, la), c in grouped.items()}


def tally(project) -> set[tuple[int, int, int, int]]:
    return set(
        ReferenceTally.objects.filter(policy__project=project).values_list(
            "node_id", "policy_id", "layer", "reference_count"
        )
    )


def reference_frame(project) -> pd.DataFrame:
    """Every reference with its policy's attributes and its node's tree and sub-node, read
    independently of stats (plain ORM values and a parent walk in Python)."""
    parents = dict(Node.objects.filter(project=project).values_list("id", "parent_id"))

    def lineage(node_id):
        chain = [node_id]
        while parents[chain[-1]] is not None:
            chain.append(parents[chain[-1]])
        chain.reverse()
        return chain[0], (chain[1] if len(chain) > 1 else 0)

    rows = Reference.objects.filter(policy__project=project).values(
        "node_id",
        "policy_id",
        "coder_id",
        "consensus",
        "policy__jurisdiction",
        "policy__release_date",
        "policy__potency_level",
        "policy__release_departments",
        "policy__attributes",
        "policy__number",
    )
    frame = pd.DataFrame(list(rows))
    frame["tree_id"] = [lineage(n)[0] for n in frame["node_id"]]
    frame["sub_id"] = [lineage(n)[1] for n in frame["node_id"]]
    frame["layer"] = frame["coder_id"].where(~frame["consensus"], CONSENSUS_LAYER).astype("int64")
    frame["year"] = frame["policy__release_date"].str[:4].replace("", stats.NONE_VALUE)
    return frame


def oracle(frame: pd.DataFrame) -> dict[tuple[int, int, int], tuple[int, int]]:
    """{(level, tree_id, sub_id): (references, distinct policies)} by pandas groupby."""
    result = {(0, 0, 0): (len(frame), frame["policy_id"].nunique())}
    for tree_id, group in frame.groupby("tree_id"):
        result[(1, int(tree_id), 0)] = (len(group), group["policy_id"].nunique())
    for (tree_id, sub_id), group in frame.groupby(["tree_id", "sub_id"]):
        result[(2, int(tree_id), int(sub_id))] = (len(group), group["policy_id"].nunique())
    return result


def as_dict(counts: pd.DataFrame, layer: str = "sum") -> dict[tuple[int, int, int], tuple[int, int]]:
    rows = counts[counts["layer"] == layer]
    return {(r.level, r.tree_id, r.sub_id): (r.references, r.policies) for r in rows.itertuples(index=False)}


def acc_for(user, project):
    return access.get_project_for_user(user, project.slug)


@pytest.fixture
def study(project, admin_user, coder_a):
    nodes = table3.build_codebook(project, admin_user)
    table3.build_policies(project, admin_user)
    table3.code_table3(project, admin_user, coder_a, nodes)
    return nodes


# --- Table 3 acceptance -----------------------------------------------------------------------


def test_table3_shares_are_computed_from_counts_and_each_group_sums_to_one(project, admin_user, coder_a, study):
    acc = acc_for(coder_a, project)
    selection = stats.resolve_layers(acc, [])
    nodes = stats.codebook(project)

    dist = stats.distribution(stats.tally_counts(project, selection, nodes=nodes), nodes)

    by_path = {row.path: row for row in dist.itertuples(index=False)}
    total = 53 + 52 + 60
    assert {tree: by_path[tree].references for tree in table3.TABLE3} == {
        "Supply-based": 53,
        "Environmental-based": 52,
        "Demand-based": 60,
    }
    # Hand-computed: 53/165 = 32.1 %, 52/165 = 31.5 %, 60/165 = 36.4 % (the paper prints
    # 34.6 / 30.1 / 35.3, which no coding with these counts gives).
    assert [round(by_path[t].share * 100, 1) for t in table3.TABLE3] == [32.1, 31.5, 36.4]
    assert by_path["Supply-based > Financial investment"].references == 14
    assert round(by_path["Supply-based > Financial investment"].share * 100, 1) == 26.4
    assert round(by_path["Environmental-based > Regulations"].share * 100, 1) == 36.5
    assert round(by_path["Demand-based > Smart Applications"].share * 100, 1) == 70.0
    for tree, subs in table3.TABLE3.items():
        tree_refs = sum(count for _, count in subs)
        assert Fraction(by_path[tree].references, total) == Fraction(tree_refs, total)
        for name, count in subs:
            row = by_path[f"{tree} > {name}"]
            assert (row.references, row.share) == (count, count / tree_refs)
        assert sum(Fraction(by_path[f"{tree} > {name}"].references, tree_refs) for name, _ in subs) == 1
    assert sum(Fraction(by_path[t].references, total) for t in table3.TABLE3) == 1
    assert dist.loc[dist["level"] == 1, "share"].sum() == pytest.approx(1.0)


def test_table3_policies_coded_are_distinct_policies_per_node(project, coder_a, study):
    selection = stats.resolve_layers(acc_for(coder_a, project), [])
    nodes = stats.codebook(project)

    dist = stats.distribution(stats.tally_counts(project, selection, nodes=nodes), nodes)

    expected: dict[str, set[int]] = {}
    for path, number, _ in table3.assignments():
        expected.setdefault(path, set()).add(number)
        expected.setdefault(path.split(" > ")[0], set()).add(number)
    assert {row.path: row.policies for row in dist.itertuples(index=False)} == {
        path: len(numbers) for path, numbers in expected.items()
    }
    assert stats.totals(stats.tally_counts(project, selection, nodes=nodes)) == {"sum": (165, table3.POLICY_COUNT)}


def test_table3_layout_has_one_column_per_tree_node(project, coder_a, study):
    selection = stats.resolve_layers(acc_for(coder_a, project), [])
    nodes = stats.codebook(project)
    dist = stats.distribution(stats.tally_counts(project, selection, nodes=nodes), nodes)

    columns = stats.table3(dist)

    assert [(c.tree, c.references) for c in columns] == [
        ("Supply-based", 53),
        ("Environmental-based", 52),
        ("Demand-based", 60),
    ]
    assert columns[2].subs[0][:3] == ("Smart Applications", 42, 42 / 60)
    assert [len(c.subs) for c in columns] == [5, 5, 4]


def test_tally_counts_is_one_query(project, coder_a, study, django_assert_num_queries):
    selection = stats.resolve_layers(acc_for(coder_a, project), [])
    nodes = stats.codebook(project)
    filters = stats.PolicyFilter(jurisdictions=("Beijing",), year_from=2012, departments=("Dept B",))

    with django_assert_num_queries(1):
        stats.tally_counts(project, selection, filters, nodes=nodes, by="department")


# --- the tally stays equal to a recount ------------------------------------------------------


def test_tally_follows_every_way_references_change(project, admin_user, supervisor, coder_a, coder_b, policy):
    supply = services.add_node(actor=admin_user, project=project, name="Supply-based")
    talent = services.add_node(actor=admin_user, project=project, name="Talent", parent=supply)
    demand = services.add_node(actor=admin_user, project=project, name="Demand-based")
    clauses = list(policy.clauses.order_by("start"))

    first = services.add_reference(
        actor=coder_a, clause=clauses[1], node=talent, start=clauses[1].start, end=clauses[1].end, coder=coder_a
    )
    services.add_reference(
        actor=coder_a, clause=clauses[1], node=talent, start=clauses[1].start, end=clauses[1].end, coder=coder_a
    )  # the same again: no duplicate, no double count
    services.add_references_for_selection(
        actor=coder_b, policy=policy, node=talent, start=clauses[1].start, end=clauses[-1].end, coder=coder_b
    )
    consensus = services.add_reference(
        actor=supervisor,
        clause=clauses[2],
        node=supply,
        start=clauses[2].start,
        end=clauses[2].start + 3,
        consensus=True,
    )
    assert tally(project) == recount(project)
    assert (talent.pk, policy.pk, coder_b.pk, len(clauses) - 1) in tally(project)

    services.update_reference(actor=coder_a, reference=first, version=first.version, node=demand)
    assert tally(project) == recount(project)
    services.update_reference(actor=coder_a, reference=first, version=first.version + 1, memo="only a memo")
    assert tally(project) == recount(project)
    services.delete_reference(actor=supervisor, reference=consensus)
    assert tally(project) == recount(project)
    services.merge_nodes(actor=admin_user, source=talent, target=demand)
    assert tally(project) == recount(project)
    Reference.objects.filter(coder=coder_b).update(node=supply)
    assert tally(project) == recount(project)
    Reference.objects.filter(coder=coder_b).delete()
    assert tally(project) == recount(project)
    services.delete_policy(actor=admin_user, policy=policy)
    assert tally(project) == recount(project) == set()


def test_tally_rows_are_never_zero(project, admin_user, coder_a, policy, node):
    clause = policy.clauses.order_by("start").first()
    reference = services.add_reference(
        actor=coder_a, clause=clause, node=node, start=clause.start, end=clause.end, coder=coder_a
    )
    assert tally(project) == {(node.pk, policy.pk, coder_a.pk, 1), (node.pk, policy.pk, ALL_CODERS_LAYER, 1)}

    services.delete_reference(actor=coder_a, reference=reference)

    assert not ReferenceTally.objects.exists()


def test_recount_rebuilds_the_tally(project, admin_user, coder_a, coder_b, study):
    table3.code_table3(project, admin_user, coder_b, study, only=30)
    table3.code_table3(project, admin_user, None, study, consensus=True, only=20)
    expected = recount(project)
    ReferenceTally.objects.filter(layer=ALL_CODERS_LAYER).delete()

    tally_module.recount(connection)

    assert tally(project) == expected
    # Every reference in its own clause: 165 + 30 + 20 rows, and the coders' again at -1
    # (coder_b coded the same node and policy as coder_a there, so those rows merge).
    assert len(expected) == 165 + 30 + 20 + 165


def test_tally_triggers_are_installed_after_migrations():
    assert tally_module.present(connection)


def test_install_recounts_references_written_while_the_triggers_were_away(project, admin_user, coder_a, study):
    tally_module.remove(connection)
    table3.code_table3(project, admin_user, None, study, consensus=True, only=10)
    assert not tally_module.present(connection)
    assert tally(project) != recount(project)

    tally_module.install(connection)

    assert tally_module.present(connection)
    assert tally(project) == recount(project)


# --- layers and blind coding -----------------------------------------------------------------


@pytest.fixture
def two_coders(project, admin_user, supervisor, coder_a, coder_b, study):
    # coder_b codes the first 100 references of the same assignment, the consensus the first 60.
    table3.code_table3(project, admin_user, coder_b, study, only=100)
    table3.code_table3(project, supervisor, None, study, consensus=True, only=60)
    return study


def test_blind_coder_reads_only_their_own_layer(project, coder_a, coder_b, two_coders):
    acc = acc_for(coder_b, project)

    assert [layer.key for layer in stats.available_layers(acc)] == [str(coder_b.pk)]
    assert stats.resolve_layers(acc, []).keys == [str(coder_b.pk)]
    for key in (str(coder_a.pk), "coders", "consensus"):
        with pytest.raises(PermissionDenied):
            stats.resolve_layers(acc, [key])
    counts = stats.tally_counts(project, stats.resolve_layers(acc, []))
    assert stats.totals(counts) == {"sum": (100, table3.POLICY_COUNT)}


def test_without_blind_coding_coders_read_every_layer(project, admin_user, coder_a, coder_b, two_coders):
    services.update_project(actor=admin_user, project=project, blind_coding=False)
    acc = acc_for(coder_b, project)

    selection = stats.resolve_layers(acc, [str(coder_a.pk), "consensus"], side_by_side=True)

    counts = stats.tally_counts(project, selection)
    assert stats.totals(counts, selection.keys) == {str(coder_a.pk): (165, 66), "consensus": (60, 60)}


def test_unknown_layer_is_a_clear_error(project, supervisor, two_coders):
    with pytest.raises(ValidationError, match="'nobody' is not a layer"):
        stats.resolve_layers(acc_for(supervisor, project), ["nobody"])


@pytest.mark.parametrize(
    "keys, side",
    [
        (["coders"], False),
        (["consensus"], False),
        (["A"], False),
        (["A", "B"], False),
        (["A", "consensus"], False),
        (["coders", "A"], False),  # A is inside "All coders": counted once
        (["A", "B", "consensus", "coders"], True),
    ],
)
def test_layers_match_pandas(project, supervisor, coder_a, coder_b, two_coders, keys, side):
    ids = {"A": str(coder_a.pk), "B": str(coder_b.pk)}
    keys = [ids.get(k, k) for k in keys]
    selection = stats.resolve_layers(acc_for(supervisor, project), keys, side_by_side=side)
    frame = reference_frame(project)
    layer_ids = {
        "coders": set(frame.loc[frame["layer"] != CONSENSUS_LAYER, "layer"]),
        "consensus": {CONSENSUS_LAYER},
        str(coder_a.pk): {coder_a.pk},
        str(coder_b.pk): {coder_b.pk},
    }

    counts = stats.tally_counts(project, selection)

    if side:
        for key in keys:
            assert as_dict(counts, key) == oracle(frame[frame["layer"].isin(layer_ids[key])])
    else:
        chosen = set().union(*(layer_ids[k] for k in keys))
        assert as_dict(counts) == oracle(frame[frame["layer"].isin(chosen)])


# --- filters ---------------------------------------------------------------------------------


FILTERS = [
    (
        stats.PolicyFilter(jurisdictions=("Beijing", "Shenzhen")),
        lambda f: f["policy__jurisdiction"].isin(["Beijing", "Shenzhen"]),
    ),
    (stats.PolicyFilter(year_from=2013, year_to=2016), lambda f: f["year"].isin(["2013", "2014", "2015", "2016"])),
    (stats.PolicyFilter(year_to=2012), lambda f: f["year"].isin(["2010", "2011", "2012"])),
    (
        stats.PolicyFilter(potency_levels=("Normative Document",)),
        lambda f: f["policy__potency_level"] == "Normative Document",
    ),
    (
        stats.PolicyFilter(departments=("Dept B",)),
        lambda f: f["policy__release_departments"].map(lambda d: "Dept B" in d),
    ),
    (
        stats.PolicyFilter(attributes=(("kind", "plan"),)),
        lambda f: f["policy__attributes"].map(lambda a: a["kind"] == "plan"),
    ),
    (stats.PolicyFilter(numbers=(1, 2, 3, 40)), lambda f: f["policy__number"].isin([1, 2, 3, 40])),
    (
        stats.PolicyFilter(jurisdictions=("Central",), attributes=(("kind", "notice"), ("kind", "plan"))),
        lambda f: f["policy__jurisdiction"] == "Central",
    ),
]


@pytest.mark.parametrize("filters, keep", FILTERS)
def test_filters_match_pandas(project, supervisor, two_coders, filters, keep):
    selection = stats.resolve_layers(acc_for(supervisor, project), ["coders"])
    frame = reference_frame(project)
    frame = frame[frame["layer"] != CONSENSUS_LAYER]

    counts = stats.tally_counts(project, selection, filters)

    expected = frame[keep(frame)]
    assert len(expected) > 0
    assert as_dict(counts) == oracle(expected)
    assert set(stats.policies(project, filters).values_list("id", flat=True)) >= set(expected["policy_id"])


def test_filter_with_no_policy_counts_nothing(project, supervisor, two_coders):
    selection = stats.resolve_layers(acc_for(supervisor, project), ["coders"])
    nodes = stats.codebook(project)

    counts = stats.tally_counts(project, selection, stats.PolicyFilter(jurisdictions=("Atlantis",)), nodes=nodes)
    dist = stats.distribution(counts, nodes)

    assert counts.empty
    assert dist["references"].sum() == 0
    assert dist["share"].isna().all()


# --- crosstab and trend ------------------------------------------------------------------------


def _attribute_column(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    if by == "jurisdiction":
        return frame.assign(value=frame["policy__jurisdiction"])
    if by == "potency_level":
        return frame.assign(value=frame["policy__potency_level"])
    if by == "year":
        return frame.assign(value=frame["year"])
    if by == "attr:kind":
        return frame.assign(value=frame["policy__attributes"].map(lambda a: a["kind"]))
    exploded = frame.assign(value=frame["policy__release_departments"].map(lambda d: d or [stats.NONE_VALUE]))
    return exploded.explode("value")


@pytest.mark.parametrize("by", ["jurisdiction", "year", "potency_level", "department", "attr:kind"])
@pytest.mark.parametrize("measure", ["references", "policies"])
def test_crosstab_matches_pandas(project, supervisor, two_coders, by, measure):
    selection = stats.resolve_layers(acc_for(supervisor, project), ["coders"])
    nodes = stats.codebook(project)
    frame = reference_frame(project)
    frame = _attribute_column(frame[frame["layer"] != CONSENSUS_LAYER], by)

    table = stats.crosstab(stats.tally_counts(project, selection, by=by, nodes=nodes), nodes, by, measure=measure)

    how = "size" if measure == "references" else "nunique"
    sub = frame[frame["sub_id"] != 0].groupby(["sub_id", "value"])["policy_id"].agg(how).unstack(fill_value=0)
    tree = frame.groupby(["tree_id", "value"])["policy_id"].agg(how).unstack(fill_value=0)
    column_totals = frame.groupby("value")["policy_id"].agg(how)
    values = [c for c in table.columns if c not in ("level", "node_id", "path", "Total")]
    assert sorted(values) == sorted(frame["value"].unique())
    for row in table.itertuples(index=False):
        cells = dict(zip(table.columns, row, strict=True))
        source = {1: tree, 2: sub}.get(row.level)
        for value in values:
            if source is None:
                expected = column_totals.get(value, 0)
            else:
                expected = source[value].get(row.node_id, 0) if value in source else 0
            assert cells[value] == expected, (row.path, value)
    # The Total column counts each reference and policy once, even where departments overlap.
    plain = oracle(reference_frame(project).query("layer != 0"))
    for row in table.itertuples(index=False):
        key = (0, 0, 0) if row.level == 0 else (row.level, *_tree_and_sub(row, nodes))
        assert row.Total == plain.get(key, (0, 0))[0 if measure == "references" else 1], row.path


def _tree_and_sub(row, nodes):
    node = next(n for n in nodes if n.id == row.node_id)
    return (node.tree_id, node.id if row.level == 2 and node.level == 2 else 0)


@pytest.mark.parametrize("percent", ["row", "column", "total"])
def test_crosstab_percentages_divide_the_counts(project, supervisor, two_coders, percent):
    selection = stats.resolve_layers(acc_for(supervisor, project), ["coders"])
    nodes = stats.codebook(project)
    counts = stats.tally_counts(project, selection, by="jurisdiction", nodes=nodes)

    raw = stats.crosstab(counts, nodes, "jurisdiction")
    shares = stats.crosstab(counts, nodes, "jurisdiction", percent=percent)

    values = [*table3.JURISDICTIONS, "Total"]
    data = raw[[*sorted(values[:-1]), "Total"]].astype(float)
    if percent == "row":
        expected = data.div(data["Total"], axis=0)
    elif percent == "column":
        expected = data.div(data.iloc[-1], axis=1)
    else:
        expected = data / data.iloc[-1]["Total"]
    pd.testing.assert_frame_equal(shares[expected.columns], expected)
    if percent == "column":
        trees = shares[shares["level"] == 1]
        assert trees[sorted(table3.JURISDICTIONS)].sum().round(12).tolist() == [1.0] * 5


def test_trend_fills_the_years_between(project, supervisor, two_coders):
    selection = stats.resolve_layers(acc_for(supervisor, project), ["coders"])
    nodes = stats.codebook(project)
    Policy.objects.filter(project=project, release_date__startswith="2015").update(release_date="")

    table = stats.crosstab(
        stats.tally_counts(project, selection, by="year", nodes=nodes), nodes, "year", fill_years=True
    )

    assert [c for c in table.columns if c[0].isdigit()] == [str(y) for y in range(2010, 2022)]
    assert (table["2015"] == 0).all()
    assert stats.NONE_VALUE in table.columns


# --- roll-up of deeper nodes -----------------------------------------------------------------


def test_nodes_deeper_than_two_levels_roll_up(project, admin_user, coder_a, policy):
    tree = services.add_node(actor=admin_user, project=project, name="Supply-based")
    sub = services.add_node(actor=admin_user, project=project, name="Talent", parent=tree)
    deep = services.add_node(actor=admin_user, project=project, name="Training", parent=sub)
    deeper = services.add_node(actor=admin_user, project=project, name="Abroad", parent=deep)
    clauses = list(policy.clauses.order_by("start"))
    for node, clause in [(sub, clauses[0]), (deep, clauses[1]), (deeper, clauses[1]), (tree, clauses[2])]:
        services.add_reference(
            actor=coder_a, clause=clause, node=node, start=clause.start, end=clause.end, coder=coder_a
        )
    selection = stats.resolve_layers(acc_for(coder_a, project), [])
    nodes = stats.codebook(project)

    dist = stats.distribution(stats.tally_counts(project, selection, nodes=nodes), nodes)

    assert [n.path for n in nodes] == [
        "Supply-based",
        "Supply-based > Talent",
        "Supply-based > Talent > Training",
        "Supply-based > Talent > Training > Abroad",
    ]
    assert dist[["path", "references", "share", "policies"]].values.tolist() == [
        ["Supply-based", 4, 1.0, 1],
        ["Supply-based > Talent", 3, 0.75, 1],
        ["Supply-based > (at Supply-based itself)", 1, 0.25, 1],
    ]


def test_a_codebook_wider_than_one_mask_word_counts_right(project, admin_user, supervisor, coder_a, coder_b):
    # 65 tree nodes, each with a sub-node that has a deeper node under it: more rows than one
    # 62-bit mask word holds, for tree nodes and for sub-nodes that roll up deeper nodes.
    trees = Node.objects.bulk_create(Node(project=project, name=f"T{i}", position=i) for i in range(65))
    subs = Node.objects.bulk_create(Node(project=project, name="S", parent=t) for t in trees)
    deep = Node.objects.bulk_create(Node(project=project, name="D", parent=s) for s in subs)
    leaves = [*trees, *subs, *deep]
    policies = table3.build_policies(project, admin_user, count=12)
    clauses = {(c.policy_id, c.number): c for c in Clause.objects.filter(policy__in=policies)}
    references = []
    for k in range(900):
        policy = policies[(k * 7) % len(policies)]
        clause = clauses[(policy.pk, 1 + (k // 12) % 10)]
        node = leaves[(k * 31) % len(leaves)]
        coder = coder_a if k % 3 else coder_b
        references.append(
            Reference(
                policy=policy,
                clause=clause,
                node=node,
                coder=coder,
                created_by=coder,
                start=clause.start + k % 5,
                end=clause.end,
                text="x",
            )
        )
    Reference.objects.bulk_create(references, ignore_conflicts=True)
    acc = acc_for(supervisor, project)
    frame = reference_frame(project)

    summed = stats.tally_counts(project, stats.resolve_layers(acc, [str(coder_a.pk), str(coder_b.pk)]))
    side = stats.tally_counts(project, stats.resolve_layers(acc, [str(coder_a.pk), "coders"], side_by_side=True))

    assert as_dict(summed) == oracle(frame)
    assert as_dict(side, str(coder_a.pk)) == oracle(frame[frame["layer"] == coder_a.pk])
    assert as_dict(side, "coders") == oracle(frame)
    assert len({key for key in as_dict(summed) if key[0] == 1}) > 62
    assert len({key for key in as_dict(summed) if key[0] == 2 and key[2]}) > 62


@pytest.mark.parametrize("by", ["jurisdiction", "department", "year"])
@pytest.mark.parametrize(
    "keys, side", [(["coders"], False), (["A", "consensus"], False), (["A", "B", "consensus"], True)]
)
def test_totals_across_values_equal_the_distribution_counts(
    project, supervisor, coder_a, coder_b, two_coders, by, keys, side
):
    # Two different queries count the same thing: the crosstab's Total column and the distribution.
    ids = {"A": str(coder_a.pk), "B": str(coder_b.pk)}
    selection = stats.resolve_layers(acc_for(supervisor, project), [ids.get(k, k) for k in keys], side_by_side=side)
    filters = stats.PolicyFilter(year_from=2012)

    plain = stats.tally_counts(project, selection, filters)
    across = stats.tally_counts(project, selection, filters, by=by)

    totals = across[across["value"].isna()].drop(columns=["value"])
    key = ["layer", "level", "tree_id", "sub_id"]
    pd.testing.assert_frame_equal(
        plain.sort_values(key).reset_index(drop=True), totals.sort_values(key).reset_index(drop=True)
    )


def test_codebook_is_one_query(project, admin_user, study, django_assert_num_queries):
    with django_assert_num_queries(1):
        nodes = stats.codebook(project)
    assert len(nodes) == 3 + 14
    assert nodes[1].path == "Supply-based > Infrastructure"


def test_unknown_attribute_and_modes_are_refused(project, supervisor, two_coders):
    with pytest.raises(ValidationError, match="'colour' is not a policy attribute"):
        stats.check_attribute("colour")
    counts = stats.tally_counts(
        project,
        stats.resolve_layers(acc_for(supervisor, project), []),
        by="jurisdiction",
        nodes=stats.codebook(project),
    )
    with pytest.raises(ValidationError, match="'cells' is not a measure"):
        stats.crosstab(counts, stats.codebook(project), "jurisdiction", measure="cells")
    with pytest.raises(ValidationError, match="'half' is not a percentage mode"):
        stats.crosstab(counts, stats.codebook(project), "jurisdiction", percent="half")


def test_filter_choices_list_the_projects_values(project, admin_user, study):
    choices = stats.filter_choices(project)

    assert choices.jurisdictions == sorted(table3.JURISDICTIONS)
    assert choices.departments == ["Dept A", "Dept B"]
    assert choices.years == list(range(2010, 2022))
    assert choices.attribute_keys == ["kind"]
    assert connection.vendor in ("sqlite", "postgresql")


def test_a_member_who_is_no_coder_still_has_a_layer(project, admin_user, supervisor):
    extra = UserFactory(username="zed")
    services.set_membership(actor=admin_user, project=project, user=extra, role=Role.SUPERVISOR)

    keys = [layer.key for layer in stats.available_layers(acc_for(supervisor, project))]

    assert keys[0] == "coders" and keys[-1] == "consensus"
    assert str(extra.pk) in keys and str(admin_user.pk) in keys
