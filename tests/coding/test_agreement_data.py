"""agreement_data: from references in the database to the figures, checked against
independent implementations (sklearn, statsmodels, krippendorff, nltk) and against the
pure functions of coding/agreement.py applied by hand."""

import random

import krippendorff
import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from nltk.metrics.agreement import AnnotationTask
from nltk.metrics.distance import masi_distance
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from coding import agreement, agreement_data, services
from coding.agreement_data import parse_selection
from coding.models import Adjudication, Event, Reference, Role
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


# --- building coded studies -------------------------------------------------------------------


@pytest.fixture
def coder_c(project):
    user = UserFactory(username="coder_c")
    services.set_membership(actor=None, project=project, user=user, role=Role.CODER)
    return user


@pytest.fixture
def codebook(project, admin_user):
    """Two tree nodes: R1 (A, B) and R2 (C)."""
    r1 = services.add_node(actor=admin_user, project=project, name="R1")
    r2 = services.add_node(actor=admin_user, project=project, name="R2")
    return {
        "R1": r1,
        "R2": r2,
        "A": services.add_node(actor=admin_user, project=project, name="A", parent=r1),
        "B": services.add_node(actor=admin_user, project=project, name="B", parent=r1),
        "C": services.add_node(actor=admin_user, project=project, name="C", parent=r2),
    }


def make_policy(project, actor, lines: int, number: int | None = None):
    text = "".join(f"第{n}行甲乙丙丁{'𠀀' if n % 3 == 0 else ''}戊己庚辛。\n" for n in range(1, lines + 1))
    return services.create_policy(
        actor=actor, project=project, title=f"P{lines}", text=text, rule="paragraph", number=number
    )


def code(coder, policy, clause_number, node, start=0, end=None):
    """Code clause ``clause_number`` of ``policy`` at ``node``: [start, end) relative to the clause."""
    clause = policy.clauses.get(number=clause_number)
    clause.policy = policy
    stop = clause.end if end is None else clause.start + end
    return services.add_reference(
        actor=coder, clause=clause, node=node, start=clause.start + start, end=stop, coder=coder
    )


def done(policy, *coders):
    for coder in coders:
        services.mark_policy_done(actor=coder, policy=policy, coder=coder)


def random_study(project, admin_user, coders, nodes, *, policies=3, lines=12, seed=7, spans=False):
    """Seeded random coding: each coder applies each node to a clause with a node-specific
    prevalence, mostly agreeing with a common 'truth'. Inserted in bulk (no audit needed here)."""
    rng = random.Random(seed)
    made = [make_policy(project, admin_user, lines + i) for i in range(policies)]
    rows = []
    for policy in made:
        for clause in policy.clauses.all():
            for k, node in enumerate(nodes):
                truth = rng.random() < 0.15 + 0.2 * k
                for coder in coders:
                    applied = truth if rng.random() < 0.8 else not truth
                    if not applied:
                        continue
                    start, end = clause.start, clause.end
                    if spans and rng.random() < 0.5:
                        start = clause.start + rng.randrange(0, (clause.end - clause.start) // 2)
                        end = min(clause.end, start + rng.randrange(1, 8))
                    rows.append(
                        Reference(
                            policy=policy,
                            clause=clause,
                            node=node,
                            coder=coder,
                            created_by=coder,
                            start=start,
                            end=end,
                            text=policy.text[start:end],
                        )
                    )
                    if spans and rng.random() < 0.2 and end + 2 <= clause.end:
                        # a second, overlapping passage of the same coder at the same node
                        rows.append(
                            Reference(
                                policy=policy,
                                clause=clause,
                                node=node,
                                coder=coder,
                                created_by=coder,
                                start=max(clause.start, start + 1),
                                end=end + 2,
                                text=policy.text[max(clause.start, start + 1) : end + 2],
                            )
                        )
        done(policy, *coders)
    Reference.objects.bulk_create(rows)
    return made


def matrix_by_hand(project, coders, node_ids, policies):
    """coders x clauses 0/1 per node straight from Reference rows (the oracle's input)."""
    clauses = [c for p in sorted(policies, key=lambda p: p.number) for c in p.clauses.order_by("start")]
    out = {}
    for node_id in node_ids:
        rows = []
        for coder in coders:
            coded = set(
                Reference.objects.filter(coder=coder, node_id__in=node_id if isinstance(node_id, list) else [node_id])
                .values_list("clause_id", flat=True)
                .distinct()
            )
            rows.append([int(c.pk in coded) for c in clauses])
        out[node_id if not isinstance(node_id, list) else node_id[0]] = np.array(rows)
    return out, clauses


# --- selection -------------------------------------------------------------------------------


def test_parse_selection_accepts_usernames_and_consensus(project, coder_a, coder_b):
    selection = parse_selection(project, coders="coder_a, consensus", level="both", unit="character")

    assert [(layer.key, layer.user_id) for layer in selection.layers] == [("coder_a", coder_a.pk), ("consensus", None)]
    assert selection.levels == ("tree", "sub")
    assert selection.params() == {"coders": "coder_a,consensus", "level": "both", "unit": "character"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"coders": "coder_a"}, "Choose two or more coders, or the consensus layer and a coder."),
        ({"coders": "coder_a,coder_a"}, "Choose two or more coders, or the consensus layer and a coder."),
        ({"coders": "coder_a,ghost"}, "No member of this project is called 'ghost'."),
        ({"coders": "coder_a,outsider"}, "No member of this project is called 'outsider'."),
        (
            {"coders": "coder_a,coder_b", "level": "leaf"},
            "Level 'leaf' is not one of: sub (sub-nodes), tree (tree nodes), both.",
        ),
        ({"coders": "coder_a,coder_b", "unit": "word"}, "Unit 'word' is not one of: clause, character."),
        (
            {"coders": "coder_a,coder_b", "policies": "1-x"},
            "Policy numbers: '1-x' is not a number or a range like 3-7.",
        ),
        ({"coders": "coder_a,coder_b", "policies": "9-3"}, "Policy numbers: the range '9-3' runs backwards."),
    ],
)
def test_parse_selection_says_what_is_wrong(project, coder_a, coder_b, outsider, kwargs, message):
    with pytest.raises(ValidationError) as exc:
        parse_selection(project, **kwargs)

    assert exc.value.messages == [message]


# --- the matrices ------------------------------------------------------------------------------


def test_sub_level_columns_are_nodes_as_coded_and_tree_level_rolls_up(project, admin_user, coder_a, coder_b, codebook):
    policy = make_policy(project, admin_user, 3)
    code(coder_a, policy, 1, codebook["A"])
    code(coder_a, policy, 1, codebook["B"])
    code(coder_b, policy, 1, codebook["B"])
    code(coder_b, policy, 2, codebook["R2"])  # coded at the tree node itself
    code(coder_a, policy, 3, codebook["C"])
    done(policy, coder_a, coder_b)

    dataset = agreement_data.load_dataset(project, parse_selection(project, coders="coder_a,coder_b", level="both"))
    sub, tree = dataset.level("sub"), dataset.level("tree")

    # R1 has children and nobody coded it directly: not a column; R2 was coded directly.
    assert [dataset.codebook.nodes[pk].name for pk in sub.columns] == ["A", "B", "R2", "C"]
    assert sub.applied.astype(int).tolist() == [
        [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]],
        [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]],
    ]
    assert [dataset.codebook.nodes[pk].name for pk in tree.columns] == ["R1", "R2"]
    assert tree.applied.astype(int).tolist() == [[[1, 0], [0, 0], [0, 1]], [[1, 0], [0, 1], [0, 0]]]
    assert tree.disagreements.astype(int).tolist() == [[0, 0], [0, 1], [0, 1]]


def test_only_policies_done_by_every_coder_count_and_the_rest_are_explained(
    project, admin_user, coder_a, coder_b, codebook
):
    both = make_policy(project, admin_user, 3)
    only_a = make_policy(project, admin_user, 4)
    make_policy(project, admin_user, 5)  # nobody done
    services.create_policy(actor=admin_user, project=project, title="catalogue entry")
    code(coder_a, only_a, 1, codebook["A"])
    done(both, coder_a, coder_b)
    done(only_a, coder_a)

    report = agreement_data.build_report(project, parse_selection(project, coders="coder_a,coder_b"))

    assert report.coverage.as_dict() == {
        "considered": 4,
        "compared": 1,
        "left_out": 3,
        "clauses": 3,
        "reasons": [
            "1 has no text yet",
            "2 of the 3 with text are not marked done by every chosen coder (marked done: coder_a 2, coder_b 1 of 3)",
        ],
    }
    assert [row.number for row in report.levels[0].policies] == [both.number]


def test_policy_filter_narrows_the_policies_considered(project, admin_user, coder_a, coder_b, codebook):
    policies = [make_policy(project, admin_user, 2) for _ in range(4)]
    for policy in policies:
        done(policy, coder_a, coder_b)

    selection = parse_selection(project, coders="coder_a,coder_b", policies="1, 3-4")
    report = agreement_data.build_report(project, selection)

    assert [row.number for row in report.levels[0].policies] == [1, 3, 4]
    assert report.coverage.considered == 3
    assert selection.policies.describe() == "policies 1, 3-4"


def test_loading_takes_the_same_number_of_queries_for_one_or_many_policies(
    project, admin_user, coder_a, coder_b, codebook
):
    def queries() -> int:
        selection = parse_selection(project, coders="coder_a,coder_b", level="both", unit="character")
        with CaptureQueriesContext(connection) as ctx:
            report = agreement_data.build_report(project, selection)
        assert report.coverage.compared == project.policies.count()
        return len(ctx)

    first = make_policy(project, admin_user, 3)
    code(coder_a, first, 1, codebook["A"])
    done(first, coder_a, coder_b)
    with_one = queries()
    for lines in (4, 5):
        policy = make_policy(project, admin_user, lines)
        code(coder_b, policy, 2, codebook["C"])
        code(coder_a, policy, 2, codebook["B"], 0, 3)
        done(policy, coder_a, coder_b)

    assert queries() == with_one
    assert with_one <= 7


# --- figures against independent implementations ------------------------------------------------


def test_two_coders_per_node_figures_match_sklearn_and_krippendorff(project, admin_user, coder_a, coder_b, codebook):
    nodes = [codebook["A"], codebook["B"], codebook["C"]]
    policies = random_study(project, admin_user, [coder_a, coder_b], nodes)

    report = agreement_data.build_report(project, parse_selection(project, coders="coder_a,coder_b"))
    matrices, clauses = matrix_by_hand(project, [coder_a, coder_b], [n.pk for n in nodes], policies)

    rows = {row.node_id: row for row in report.levels[0].nodes}
    for node in nodes:
        m = matrices[node.pk]
        row = rows[node.pk]
        assert row.units == len(clauses)
        assert row.applied == m.sum(axis=1).tolist()
        assert row.disagreements == int((m[0] != m[1]).sum())
        assert row.percent.value == pytest.approx((m[0] == m[1]).mean(), abs=1e-12)
        assert row.kappa.value == pytest.approx(cohen_kappa_score(m[0], m[1]), abs=1e-9)
        assert row.alpha.value == pytest.approx(
            krippendorff.alpha(m.astype(float), level_of_measurement="nominal"), abs=1e-9
        )


def test_three_coders_use_fleiss_kappa_as_statsmodels_computes_it(
    project, admin_user, coder_a, coder_b, coder_c, codebook
):
    coders = [coder_a, coder_b, coder_c]
    nodes = [codebook["A"], codebook["B"], codebook["C"]]
    policies = random_study(project, admin_user, coders, nodes, seed=11)

    selection = parse_selection(project, coders="coder_a,coder_b,coder_c")
    report = agreement_data.build_report(project, selection)
    matrices, _ = matrix_by_hand(project, coders, [n.pk for n in nodes], policies)

    assert selection.kappa_kind == "fleiss"
    for row in report.levels[0].nodes:
        m = matrices[row.node_id]
        table, _ = aggregate_raters(m.T)
        assert row.kappa.value == pytest.approx(fleiss_kappa(table, method="fleiss"), abs=1e-9)
        assert row.alpha.value == pytest.approx(
            krippendorff.alpha(m.astype(float), level_of_measurement="nominal"), abs=1e-9
        )
    pairs = {(p.first, p.second): p for p in report.levels[0].pairs}
    assert list(pairs) == [("coder_a", "coder_b"), ("coder_a", "coder_c"), ("coder_b", "coder_c")]
    flat = {c.username: np.concatenate([matrices[n.pk][i] for n in nodes]) for i, c in enumerate(coders)}
    for (first, second), pair in pairs.items():
        assert pair.kappa.value == pytest.approx(cohen_kappa_score(flat[first], flat[second]), abs=1e-9)
        assert pair.disagreements == int((flat[first] != flat[second]).sum())


def test_overall_masi_alpha_matches_nltk_and_nominal_alpha_uses_single_node_clauses(
    project, admin_user, coder_a, coder_b, codebook
):
    nodes = [codebook["A"], codebook["B"], codebook["C"]]
    policies = random_study(project, admin_user, [coder_a, coder_b], nodes, seed=3)
    report = agreement_data.build_report(project, parse_selection(project, coders="coder_a,coder_b"))
    matrices, clauses = matrix_by_hand(project, [coder_a, coder_b], [n.pk for n in nodes], policies)

    sets = [[frozenset(n.pk for n in nodes if matrices[n.pk][i][u]) for u in range(len(clauses))] for i in range(2)]

    def masi(a, b):  # nltk raises on two empty sets (AGREEMENT.md §2.7)
        return 0.0 if not a and not b else masi_distance(a, b)

    task = AnnotationTask(
        data=[(str(i), str(u), sets[i][u]) for i in range(2) for u in range(len(clauses))], distance=masi
    )
    overall = {row.key: row for row in report.levels[0].overall}
    assert overall["masi_alpha"].figure.value == pytest.approx(task.alpha(), abs=1e-9)
    single = [u for u in range(len(clauses)) if all(len(sets[i][u]) <= 1 for i in range(2))]
    values = [[next(iter(sets[i][u]), -1) for u in single] for i in range(2)]
    assert overall["nominal_alpha"].n == len(single)
    assert overall["nominal_alpha"].figure.value == pytest.approx(
        krippendorff.alpha(np.array(values, dtype=float), level_of_measurement="nominal"), abs=1e-9
    )
    left_out = len(clauses) - len(single)
    assert overall["nominal_alpha"].note == (
        f"over the {len(single)} clauses where each coder applied at most one node; {left_out} left out"
    )
    identical = np.mean([sets[0][u] == sets[1][u] for u in range(len(clauses))])
    assert overall["identical_sets"].figure.value == pytest.approx(identical, abs=1e-12)


@pytest.mark.parametrize("pad_cells", [None, 60])  # 60: policies padded in several chunks
def test_per_policy_figures_equal_the_maths_on_each_policys_decisions(
    project, admin_user, coder_a, coder_b, coder_c, codebook, monkeypatch, pad_cells
):
    if pad_cells:
        monkeypatch.setattr(agreement_data, "_PAD_CELLS", pad_cells)
    coders = [coder_a, coder_b, coder_c]
    nodes = [codebook["A"], codebook["B"], codebook["C"]]
    policies = random_study(project, admin_user, coders, nodes, policies=4, seed=5)
    report = agreement_data.build_report(project, parse_selection(project, coders="coder_a,coder_b,coder_c"))

    for row, policy in zip(report.levels[0].policies, sorted(policies, key=lambda p: p.number), strict=True):
        matrices, clauses = matrix_by_hand(project, coders, [n.pk for n in nodes], [policy])
        decisions = np.concatenate([matrices[n.pk] for n in nodes], axis=1)
        assert row.clauses == len(clauses)
        assert row.percent.value == pytest.approx(agreement.percent_agreement(decisions), abs=1e-12)
        assert row.alpha.value == pytest.approx(agreement.krippendorff_alpha(decisions), abs=1e-12)
        per_clause = np.stack([matrices[n.pk] for n in nodes], axis=2)  # coders x clauses x nodes
        assert row.disagreements == int((per_clause.min(axis=0) != per_clause.max(axis=0)).any(axis=1).sum())


def test_character_unit_pools_nvivo_counts_over_policies(project, admin_user, coder_a, coder_b, codebook):
    nodes = [codebook["A"], codebook["B"], codebook["C"]]
    policies = random_study(project, admin_user, [coder_a, coder_b], nodes, seed=9, spans=True)
    report = agreement_data.build_report(project, parse_selection(project, coders="coder_a,coder_b", unit="character"))

    for row in report.levels[0].nodes:
        per_policy = []
        for policy in policies:
            spans = [
                list(
                    Reference.objects.filter(policy=policy, coder=coder, node_id=row.node_id).values_list(
                        "start", "end"
                    )
                )
                for coder in (coder_a, coder_b)
            ]
            per_policy.append(agreement.character_agreement(len(policy.text), *spans))
        pooled = agreement.pool_character_agreement(per_policy)
        assert row.characters == sum(len(p.text) for p in policies)
        assert row.percent.value == pytest.approx(pooled.percent_agreement, abs=1e-12)
        assert row.kappa.value == pytest.approx(pooled.kappa, abs=1e-12)
        assert row.coded == [sum(r.a + r.b for r in per_policy), sum(r.a + r.c for r in per_policy)]


def test_character_unit_alpha_u_is_taken_over_the_policies_joined_in_order(
    project, admin_user, coder_a, coder_b, codebook
):
    nodes = [codebook["A"], codebook["B"], codebook["C"]]
    policies = sorted(
        random_study(project, admin_user, [coder_a, coder_b], nodes, seed=21, spans=True), key=lambda p: p.number
    )
    report = agreement_data.build_report(project, parse_selection(project, coders="coder_a,coder_b", unit="character"))

    offsets, total = {}, 0
    for policy in policies:
        offsets[policy.pk] = total
        total += len(policy.text)

    def spans_of(coder, node_id):
        spans = sorted(
            (s + offsets[p], e + offsets[p])
            for p, s, e in Reference.objects.filter(coder=coder, node_id=node_id).values_list(
                "policy_id", "start", "end"
            )
        )
        merged = []
        for s, e in spans:  # overlapping passages of one coder become one unit
            if merged and s < merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        return [(s, e, node_id) for s, e in merged]

    for row in report.levels[0].nodes:
        coders = [spans_of(coder_a, row.node_id), spans_of(coder_b, row.node_id)]
        assert row.alpha_u.value == pytest.approx(
            agreement.unitized_alpha(total, coders, category=row.node_id), abs=1e-12
        )
    everything = [[span for n in nodes for span in spans_of(c, n.pk)] for c in (coder_a, coder_b)]
    overall = {row.key: row for row in report.levels[0].overall}
    assert overall["alpha_u"].figure.value == pytest.approx(agreement.unitized_alpha(total, everything), abs=1e-12)


def test_character_disagreements_are_clauses_where_the_coded_characters_differ(
    project, admin_user, coder_a, coder_b, codebook
):
    policy = make_policy(project, admin_user, 4)
    code(coder_a, policy, 1, codebook["A"])  # same passage: agree
    code(coder_b, policy, 1, codebook["A"])
    code(coder_a, policy, 2, codebook["A"], 0, 4)  # overlapping, different: disagree
    code(coder_b, policy, 2, codebook["A"], 2, 6)
    code(coder_a, policy, 3, codebook["A"], 0, 3)  # abutting passages cover the same characters
    code(coder_a, policy, 3, codebook["A"], 3, 6)
    code(coder_b, policy, 3, codebook["A"], 0, 6)
    done(policy, coder_a, coder_b)

    selection = parse_selection(project, coders="coder_a,coder_b", unit="character")
    data = agreement_data.load_dataset(project, selection).level("sub")

    assert data.disagreements[:, data.column_index[codebook["A"].pk]].tolist() == [False, True, False, False]


def test_not_computable_figures_say_why(project, admin_user, coder_a, coder_b, coder_c, codebook):
    policy = make_policy(project, admin_user, 3)
    for n in (1, 2, 3):
        code(coder_a, policy, n, codebook["C"])
        code(coder_b, policy, n, codebook["C"])
    code(coder_a, policy, 1, codebook["A"])
    done(policy, coder_a, coder_b)

    report = agreement_data.build_report(project, parse_selection(project, coders="coder_a,coder_b"))
    rows = {row.name: row for row in report.levels[0].nodes}

    assert rows["B"].kappa == agreement_data.Figure(
        None, "no variation: no coder applied this node to any of the 3 clauses"
    )
    assert rows["B"].alpha.reason == rows["B"].kappa.reason
    assert rows["B"].percent.value == 1.0
    assert rows["C"].kappa.reason == "no variation: every coder applied this node to all 3 clauses"
    assert rows["A"].kappa.value == 0.0  # one coder only: kappa is 0, not undefined
    records = report.records("nodes")
    assert records[1]["notes"] == "kappa, alpha: no variation: no coder applied this node to any of the 3 clauses"

    nobody = agreement_data.build_report(project, parse_selection(project, coders="coder_a,coder_c"))
    assert nobody.levels[0].nodes[0].kappa.reason == (
        "no clauses to compare: no policy is marked done by every chosen coder"
    )
    three = agreement_data.build_report(
        project, parse_selection(project, coders="coder_a,coder_b,coder_c", unit="character")
    )
    assert three.coverage.compared == 0


def test_nvivo_figures_need_exactly_two_coders(project, admin_user, coder_a, coder_b, coder_c, codebook):
    policy = make_policy(project, admin_user, 2)
    code(coder_a, policy, 1, codebook["A"])
    done(policy, coder_a, coder_b, coder_c)

    report = agreement_data.build_report(
        project, parse_selection(project, coders="coder_a,coder_b,coder_c", unit="character")
    )
    row = report.levels[0].nodes[0]

    assert row.kappa.reason == "NVivo's comparison is between two coders: choose two (α_u takes any number)"
    assert row.alpha_u.value is not None


# --- the consensus layer as a coder -------------------------------------------------------------


def test_consensus_layer_counts_on_policies_where_it_has_coding(
    project, admin_user, supervisor, coder_a, coder_b, codebook
):
    adjudicated = make_policy(project, admin_user, 2)
    untouched = make_policy(project, admin_user, 3)
    code(coder_a, adjudicated, 1, codebook["A"])
    code(coder_a, untouched, 1, codebook["A"])
    done(adjudicated, coder_a, coder_b)
    done(untouched, coder_a, coder_b)
    clause = adjudicated.clauses.get(number=1)
    services.adjudicate(
        actor=supervisor,
        clause=clause,
        node=codebook["A"],
        scope="node",
        decision="accept",
        coders=[coder_a, coder_b],
        accepted=coder_a,
    )

    report = agreement_data.build_report(project, parse_selection(project, coders="coder_a,consensus"))

    assert [row.number for row in report.levels[0].policies] == [adjudicated.number]
    assert report.coverage.reasons == [
        "1 of the 2 with text are not marked done by every chosen coder (marked done: coder_a 2 of 2); "
        "the consensus layer has coding or decisions in 1 of them"
    ]
    row = next(r for r in report.levels[0].nodes if r.name == "A")
    assert row.applied == [1, 1]
    assert row.percent.value == 1.0


# --- adjudication ------------------------------------------------------------------------------


def _consensus(clause):
    return sorted(
        Reference.objects.filter(clause=clause, consensus=True).values_list(
            "node__name", "start", "end", "created_by__username"
        )
    )


def test_adjudication_writes_the_consensus_layer_with_one_event_per_change(
    project, admin_user, supervisor, coder_a, coder_b, codebook
):
    policy = make_policy(project, admin_user, 2)
    clause = policy.clauses.get(number=1)
    code(coder_a, policy, 1, codebook["A"], 0, 4)
    code(coder_b, policy, 1, codebook["A"], 2, 6)
    code(coder_b, policy, 1, codebook["B"])  # another node: not part of this decision
    done(policy, coder_a, coder_b)
    before = Event.objects.count()

    def decide(decision, accepted=None):
        return services.adjudicate(
            actor=supervisor,
            clause=clause,
            node=codebook["A"],
            scope="node",
            decision=decision,
            coders=[coder_a, coder_b],
            accepted=accepted,
        )

    decide("accept", coder_a)
    a, s = clause.start, supervisor.username
    assert _consensus(clause) == [("A", a, a + 4, s)]
    assert Event.objects.count() - before == 2  # reference.create + adjudication.create

    decide("accept", coder_a)  # the same again: nothing changes
    assert Event.objects.count() - before == 2

    decide("both")
    assert _consensus(clause) == [("A", a, a + 4, s), ("A", a + 2, a + 6, s)]
    assert Event.objects.count() - before == 4  # + reference.create + adjudication.update

    decide("accept", coder_b)
    assert _consensus(clause) == [("A", a + 2, a + 6, s)]
    assert Event.objects.count() - before == 6  # + reference.delete + adjudication.update

    decide("neither")
    assert _consensus(clause) == []
    adjudication = Adjudication.objects.get()
    assert (adjudication.decision, adjudication.accepted_coder, adjudication.decided_by) == (
        "neither",
        None,
        supervisor,
    )
    actions = list(Event.objects.order_by("id").values_list("action", flat=True))[-2:]
    assert actions == ["reference.delete", "adjudication.update"]


def test_tree_level_adjudication_takes_the_sub_nodes_along(project, admin_user, supervisor, coder_a, coder_b, codebook):
    policy = make_policy(project, admin_user, 2)
    clause = policy.clauses.get(number=1)
    code(coder_a, policy, 1, codebook["A"])
    code(coder_a, policy, 1, codebook["B"], 0, 3)
    code(coder_a, policy, 1, codebook["C"])  # under R2: not part of an R1 decision
    done(policy, coder_a, coder_b)

    services.adjudicate(
        actor=supervisor,
        clause=clause,
        node=codebook["R1"],
        scope="subtree",
        decision="accept",
        coders=[coder_a, coder_b],
        accepted=coder_a,
    )

    assert [name for name, *_ in _consensus(clause)] == ["A", "B"]
    report = agreement_data.build_report(project, parse_selection(project, coders="coder_a,coder_b", level="both"))
    tree, sub = report.levels
    assert (tree.level, tree.disagreements, tree.resolved) == ("tree", 2, 1)
    assert (sub.level, sub.disagreements, sub.resolved) == ("sub", 3, 0)  # decided as a tree node only


def test_neither_counts_as_resolved(project, admin_user, supervisor, coder_a, coder_b, codebook):
    policy = make_policy(project, admin_user, 2)
    code(coder_a, policy, 2, codebook["C"])
    done(policy, coder_a, coder_b)
    selection = parse_selection(project, coders="coder_a,coder_b")
    assert agreement_data.build_report(project, selection).levels[0].resolved == 0

    services.adjudicate(
        actor=supervisor,
        clause=policy.clauses.get(number=2),
        node=codebook["C"],
        scope="node",
        decision="neither",
        coders=[coder_a, coder_b],
    )

    level = agreement_data.build_report(project, selection).levels[0]
    assert (level.disagreements, level.resolved) == (1, 1)
    assert level.policies[0].resolved == 1
    assert next(r for r in level.nodes if r.name == "C").resolved == 1


def test_coding_anew_adds_a_consensus_reference_in_code_points(
    project, admin_user, supervisor, coder_a, coder_b, policy, codebook
):
    clause = policy.clauses.get(number=3)  # "第三条　市人民政府应当加强人才培养，𠀀支持数据共享。"
    at = policy.text.index("𠀀支持")
    services.code_consensus_anew(
        actor=supervisor,
        clause=clause,
        node=codebook["R1"],
        scope="subtree",
        code_node=codebook["B"],
        start=at,
        end=at + 3,
    )

    reference = Reference.objects.get(consensus=True)
    assert (reference.text, reference.node, reference.coder, reference.created_by) == (
        "𠀀支持",
        codebook["B"],
        None,
        supervisor,
    )
    assert Adjudication.objects.get().decision == "anew"
    assert list(Event.objects.order_by("-id").values_list("action", flat=True)[:2]) == [
        "adjudication.create",
        "reference.create",
    ]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ({"decision": "accept"}, "Accept the coding of one of the compared coders."),
        ({"decision": "accept", "accepted": "admin"}, "Accept the coding of one of the compared coders."),
        ({"decision": "maybe"}, "'maybe' is not a decision here; use one of accept, both, neither."),
        ({"decision": "both", "scope": "everything"}, "'everything' is not a scope; use one of node, subtree."),
    ],
)
def test_bad_adjudication_is_refused_and_changes_nothing(
    project, admin_user, supervisor, coder_a, coder_b, codebook, call, message
):
    policy = make_policy(project, admin_user, 2)
    code(coder_a, policy, 1, codebook["A"])
    before = Event.objects.count()
    kwargs = {"scope": "node", "coders": [coder_a, coder_b]} | call
    if kwargs.get("accepted") == "admin":
        kwargs["accepted"] = admin_user

    with pytest.raises(ValidationError) as exc:
        services.adjudicate(actor=supervisor, clause=policy.clauses.get(number=1), node=codebook["A"], **kwargs)

    assert exc.value.messages == [message]
    assert Event.objects.count() == before
    assert not Reference.objects.filter(consensus=True).exists()


def test_coding_anew_outside_the_decided_node_is_refused(project, admin_user, supervisor, codebook):
    policy = make_policy(project, admin_user, 2)
    clause = policy.clauses.get(number=1)

    with pytest.raises(ValidationError) as exc:
        services.code_consensus_anew(
            actor=supervisor,
            clause=clause,
            node=codebook["R1"],
            scope="subtree",
            code_node=codebook["C"],
            start=clause.start,
            end=clause.end,
        )

    assert exc.value.messages == ["Code this disagreement at 'R1' or one of its sub-nodes, not at 'C'."]
    assert not Adjudication.objects.exists()


# --- drill-down ----------------------------------------------------------------------------------


def test_drilldown_describes_each_coder_side_by_side_with_highlights(
    project, admin_user, coder_a, coder_b, policy, codebook
):
    clause = policy.clauses.get(number=3)
    text = clause.text_of(policy)
    at = text.index("𠀀")
    code(coder_a, policy, 3, codebook["A"], 0, at + 1)
    code(coder_b, policy, 3, codebook["B"], at, len(text))
    done(policy, coder_a, coder_b)
    selection = parse_selection(project, coders="coder_a,coder_b")
    dataset = agreement_data.load_dataset(project, selection)
    data = dataset.level("sub")
    rows = data.disagreement_units(column=data.column_index[codebook["A"].pk])

    views = agreement_data.describe_units(
        project,
        selection,
        dataset.codebook,
        "sub",
        [(int(dataset.clauses["clause_id"][u]), data.columns[c]) for u, c in rows],
    )

    [view] = views
    assert (view.label, view.node.name, view.clause_text) == ("1-3", "A", text)
    first, second = view.layers
    assert [(s.text, s.nodes, s.focus) for s in first.segments] == [
        (text[: at + 1], ("R1 › A",), True),
        (text[at + 1 :], (), False),
    ]
    assert [(s.text, s.nodes, s.focus) for s in second.segments] == [
        (text[:at], (), False),
        (text[at:], ("R1 › B",), False),
    ]
    assert (first.applied, second.applied) == (True, False)
    assert view.consensus.segments[0].text == text and view.decision is None


def test_masi_alpha_with_more_nodes_than_fit_in_one_machine_word(project, admin_user, coder_a, coder_b):
    root = services.add_node(actor=admin_user, project=project, name="Root")
    nodes = [services.add_node(actor=admin_user, project=project, name=f"N{i}", parent=root) for i in range(70)]
    policy = make_policy(project, admin_user, 8)
    rng = random.Random(1)
    for clause_number in range(1, 9):
        chosen = rng.sample(range(60, 70), 2)  # nodes beyond the 63rd
        code(coder_a, policy, clause_number, nodes[chosen[0]])
        code(coder_b, policy, clause_number, nodes[chosen[rng.random() < 0.5]])
        if clause_number % 3 == 0:
            code(coder_b, policy, clause_number, nodes[clause_number])
    done(policy, coder_a, coder_b)

    report = agreement_data.build_report(project, parse_selection(project, coders="coder_a,coder_b"))

    sets = [
        [
            frozenset(Reference.objects.filter(clause=clause, coder=coder).values_list("node_id", flat=True))
            for clause in policy.clauses.order_by("start")
        ]
        for coder in (coder_a, coder_b)
    ]
    overall = {row.key: row for row in report.levels[0].overall}
    assert overall["masi_alpha"].figure.value == pytest.approx(agreement.masi_alpha(sets), abs=1e-12)
    assert overall["identical_sets"].figure.value == pytest.approx(
        np.mean([a == b for a, b in zip(*sets, strict=True)]), abs=1e-12
    )


# --- copying the agreed coding into the consensus ----------------------------------------------


def test_agreed_coding_is_copied_once_and_decisions_are_left_alone(
    project, admin_user, supervisor, coder_a, coder_b, codebook
):
    policy = make_policy(project, admin_user, 3)
    code(coder_a, policy, 1, codebook["A"], 0, 4)  # both applied A to 1: agreed (different passages)
    code(coder_b, policy, 1, codebook["A"], 2, 6)
    code(coder_a, policy, 2, codebook["A"])  # both applied R1 to 2 (A vs B): agreed at tree level only
    code(coder_b, policy, 2, codebook["B"])
    code(coder_a, policy, 3, codebook["C"])  # both applied C to 3, but already decided
    code(coder_b, policy, 3, codebook["C"])
    done(policy, coder_a, coder_b)
    clause_3 = policy.clauses.get(number=3)
    services.adjudicate(
        actor=supervisor,
        clause=clause_3,
        node=codebook["C"],
        scope="node",
        decision="neither",
        coders=[coder_a, coder_b],
    )
    selection = parse_selection(project, coders="coder_a,coder_b", level="both")
    dataset = agreement_data.load_dataset(project, selection)

    def agreed(level):
        data = dataset.level(level)
        return [(int(dataset.clauses["clause_id"][u]), data.columns[c]) for u, c in data.agreed_units().tolist()]

    before = Event.objects.count()
    added = services.adopt_agreed_coding(
        actor=supervisor, project=project, units=agreed("sub"), scope="node", coders=[coder_a, coder_b]
    )

    clause_1 = policy.clauses.get(number=1)
    assert added == 1
    assert _consensus(clause_1) == [("A", clause_1.start, clause_1.start + 4, supervisor.username)]
    assert _consensus(clause_3) == []  # decided "neither": left alone
    assert Event.objects.count() - before == 1
    assert (
        services.adopt_agreed_coding(
            actor=supervisor, project=project, units=agreed("sub"), scope="node", coders=[coder_a, coder_b]
        )
        == 0
    )
    tree_added = services.adopt_agreed_coding(
        actor=supervisor, project=project, units=agreed("tree"), scope="subtree", coders=[coder_a, coder_b]
    )
    assert tree_added == 2  # R1 in clause 2 (coder_a's A), R2 in clause 3 (no subtree decision there)
    clause_2 = policy.clauses.get(number=2)
    assert [name for name, *_ in _consensus(clause_2)] == ["A"]


def test_copying_agreed_coding_audits_each_reference_in_a_constant_number_of_queries(
    project, admin_user, supervisor, coder_a, coder_b, codebook
):
    policy = make_policy(project, admin_user, 8)

    def agree_on(numbers):
        units = []
        for number in numbers:
            for coder in (coder_a, coder_b):
                code(coder, policy, number, codebook["A"], 1, 5)
                code(coder, policy, number, codebook["C"])
            units += [(policy.clauses.get(number=number).pk, codebook[name].pk) for name in ("A", "C")]
        return units

    def adopt(units):
        with CaptureQueriesContext(connection) as ctx:
            added = services.adopt_agreed_coding(
                actor=supervisor, project=project, units=units, scope="node", coders=[coder_a, coder_b]
            )
        return added, len(ctx)

    before = Event.objects.count()
    few = adopt(agree_on([1]))
    many = adopt(agree_on([2, 3, 4, 5, 6]))

    assert (few[0], many[0]) == (2, 10)
    assert few[1] == many[1]
    events = list(Event.objects.order_by("id")[before:].values_list("action", "target_id", "target_label", "after"))
    events = [e for e in events if e[0] == "reference.create" and e[3]["consensus"]]
    consensus = Reference.objects.filter(consensus=True).order_by("clause__number", "node__name")
    labels = sorted((r.pk, f"{policy.number}-{r.clause.number}") for r in consensus)
    assert sorted((e[1], e[2]) for e in events) == labels
    for reference in consensus:
        assert reference.text == policy.text[reference.start : reference.end]
        assert reference.created_by == supervisor
    first = consensus.filter(node=codebook["A"]).first()
    assert (first.end - first.start, first.memo) == (4, "")


def test_copying_agreed_coding_while_someone_codes_the_consensus_is_refused_cleanly(
    project, admin_user, supervisor, coder_a, coder_b, codebook, monkeypatch
):
    policy = make_policy(project, admin_user, 2)
    for coder in (coder_a, coder_b):
        code(coder, policy, 1, codebook["A"])
    clause = policy.clauses.get(number=1)
    real_bulk_create = Reference.objects.bulk_create

    def meanwhile(objs, *args, **kwargs):  # another supervisor codes the passage first
        services.add_reference(
            actor=admin_user, clause=clause, node=codebook["A"], start=clause.start, end=clause.end, consensus=True
        )
        return real_bulk_create(objs, *args, **kwargs)

    monkeypatch.setattr(Reference.objects, "bulk_create", meanwhile)
    events = Event.objects.count()

    with pytest.raises(ValidationError, match="The consensus layer changed while the agreed coding was being copied"):
        services.adopt_agreed_coding(
            actor=supervisor,
            project=project,
            units=[(clause.pk, codebook["A"].pk)],
            scope="node",
            coders=[coder_a, coder_b],
        )
    # Nothing copied, nothing audited (the simulated other write ran in this same transaction
    # here, so it was rolled back with it).
    assert not Reference.objects.filter(consensus=True).exists()
    assert Event.objects.count() == events


def test_copying_coding_the_coders_do_not_agree_on_is_refused(
    project, admin_user, supervisor, coder_a, coder_b, codebook
):
    policy = make_policy(project, admin_user, 2)
    code(coder_a, policy, 1, codebook["A"])
    clause = policy.clauses.get(number=1)

    with pytest.raises(ValidationError) as exc:
        services.adopt_agreed_coding(
            actor=supervisor,
            project=project,
            units=[(clause.pk, codebook["A"].pk)],
            scope="node",
            coders=[coder_a, coder_b],
        )

    assert exc.value.messages == ["The coders do not agree on 'A' in clause 1-1."]
    assert not Reference.objects.filter(consensus=True).exists()
