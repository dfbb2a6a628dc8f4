"""Krippendorff's alpha beside the distribution (``stats.node_agreement``): the agreement
page's figures where the page has them, and an independent computation with the
``krippendorff`` package for every row, rolled-up sub-nodes included."""

import io
import json
import random

import krippendorff
import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from coding import access, services, stats
from coding.models import Clause, DoneMark, Policy, Reference, Role
from tests.coding import table3
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LAYERS = ["coder_a", "coder_b", "coder_c", "consensus"]
NOT_DONE_BY_C = {5, 17}  # left out of every comparison with coder_c
NO_CONSENSUS = {8, 9, 40}  # no consensus coding there: left out of comparisons with the consensus


@pytest.fixture
def coder_c(project):
    user = UserFactory(username="coder_c")
    services.set_membership(actor=None, project=project, user=user, role=Role.CODER)
    return user


@pytest.fixture
def study(project, admin_user, supervisor, coder_a, coder_b, coder_c):
    """Two tree nodes; T1 has a leaf S1 and a sub-node S2 with deeper nodes D1 > D2, T2 two
    leaves. Seeded random coding, mostly agreeing, in three coders' layers and the consensus,
    also on T1 itself and on S2 and D1 directly; every coder marks nearly every policy done."""
    add = services.add_node
    t1 = add(actor=admin_user, project=project, name="T1")
    s1 = add(actor=admin_user, project=project, name="S1", parent=t1)
    s2 = add(actor=admin_user, project=project, name="S2", parent=t1)
    d1 = add(actor=admin_user, project=project, name="D1", parent=s2)
    d2 = add(actor=admin_user, project=project, name="D2", parent=d1)
    t2 = add(actor=admin_user, project=project, name="T2")
    s3 = add(actor=admin_user, project=project, name="S3", parent=t2)
    s4 = add(actor=admin_user, project=project, name="S4", parent=t2)
    nodes = {n.name: n for n in (t1, s1, s2, d1, d2, t2, s3, s4)}
    policies = table3.build_policies(project, admin_user, count=44)
    clauses = list(Clause.objects.filter(policy__project=project).select_related("policy").order_by("pk"))
    rng = random.Random(20240611)
    prevalence = {"T1": 0.05, "S1": 0.3, "S2": 0.1, "D1": 0.1, "D2": 0.15, "T2": 0.0, "S3": 0.25, "S4": 0.01}
    layers = [(coder_a, False), (coder_b, False), (coder_c, False), (None, True)]
    references = []
    for clause in clauses:
        for name, node in nodes.items():
            truth = rng.random() < prevalence[name]
            for coder, consensus in layers:
                if consensus and clause.policy.number in NO_CONSENSUS:
                    continue
                if truth != (rng.random() < 0.15):  # each layer strays from the truth at times
                    references.append(
                        Reference(
                            policy=clause.policy,
                            clause=clause,
                            node=node,
                            coder=coder,
                            consensus=consensus,
                            created_by=coder or supervisor,
                            start=clause.start,
                            end=clause.end,
                            text=clause.policy.text[clause.start : clause.end],
                        )
                    )
    Reference.objects.bulk_create(references)
    DoneMark.objects.bulk_create(
        DoneMark(policy=policy, coder=coder)
        for policy in policies
        for coder in (coder_a, coder_b, coder_c)
        if not (coder == coder_c and policy.number in NOT_DONE_BY_C)
    )
    return nodes


def selection_for(project, supervisor, usernames, *, side_by_side=True):
    acc = access.get_project_for_user(supervisor, project.slug)
    keys = {layer.label.removesuffix(" (you)"): layer.key for layer in stats.available_layers(acc)}
    keys["consensus"] = "consensus"
    keys["coders"] = "coders"
    return stats.resolve_layers(acc, [keys[name] for name in usernames], side_by_side=side_by_side)


def command_alphas(*, coders: str, **options) -> dict[tuple[str, int], float | None]:
    """{(level, node id): alpha} as ``manage.py agreement --format json`` prints them."""
    out = io.StringIO()
    args = ["--project", "study", "--coders", coders, "--level", "both", "--format", "json", "--table", "nodes"]
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", value]
    call_command("agreement", *args, stdout=out)
    levels = json.loads(out.getvalue())["levels"]
    return {
        (level, row["node_id"]): row["krippendorff_alpha"]
        for level, tables in levels.items()
        for row in tables["nodes"]
    }


def oracle(project, usernames, group_ids, policy_numbers=None) -> float | None:
    """Krippendorff's alpha by the ``krippendorff`` package: layers x clauses of the policies
    every compared coder marked done (and, with the consensus, that hold consensus coding), 1
    where the layer coded any node of the group in the clause. None where the package finds
    no variation to compute it from."""
    coders = [name for name in usernames if name != "consensus"]
    policies = Policy.objects.filter(project=project)
    if policy_numbers is not None:
        policies = policies.filter(number__in=policy_numbers)
    done = {
        number
        for number in policies.values_list("number", flat=True)
        if DoneMark.objects.filter(policy__project=project, policy__number=number, coder__username__in=coders).count()
        == len(coders)
    }
    if "consensus" in usernames:
        done &= set(
            Reference.objects.filter(policy__project=project, consensus=True).values_list("policy__number", flat=True)
        )
    units = list(
        Clause.objects.filter(policy__project=project, policy__number__in=done)
        .values_list("pk", flat=True)
        .order_by("pk")
    )
    column = {pk: i for i, pk in enumerate(units)}
    data = np.zeros((len(usernames), len(units)))
    for coder, consensus, clause_id in Reference.objects.filter(
        policy__project=project, node_id__in=group_ids, clause_id__in=units
    ).values_list("coder__username", "consensus", "clause_id"):
        name = "consensus" if consensus else coder
        if name in usernames:
            data[usernames.index(name), column[clause_id]] = 1
    if len(np.unique(data)) < 2:
        return None
    return krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")


def groups(nodes) -> dict[tuple[int, int], list[int]]:
    """The rows of the distribution table and the nodes each one counts, written out by hand."""
    n = {name: node.pk for name, node in nodes.items()}
    return {
        (1, n["T1"]): [n["T1"], n["S1"], n["S2"], n["D1"], n["D2"]],
        (2, n["S1"]): [n["S1"]],
        (2, n["S2"]): [n["S2"], n["D1"], n["D2"]],  # rolled up, as its counts are
        (2, n["T1"]): [n["T1"]],  # "(at T1 itself)"
        (1, n["T2"]): [n["T2"], n["S3"], n["S4"]],
        (2, n["S3"]): [n["S3"]],
        (2, n["S4"]): [n["S4"]],
        (2, n["T2"]): [n["T2"]],
    }


@pytest.mark.parametrize(
    "usernames",
    [LAYERS, ["coder_a", "coder_b"], ["coder_b", "consensus"], ["coder_a", "coder_b", "coder_c"]],
)
def test_alpha_equals_the_agreement_commands_figures(project, supervisor, study, usernames):
    selection = selection_for(project, supervisor, usernames)

    result = stats.node_agreement(project, selection)

    expected = command_alphas(coders=",".join(usernames))
    n = {name: node.pk for name, node in study.items()}
    # Tree rows are the tree level's figures; leaves and nodes coded directly the sub level's.
    compared = {
        (1, n["T1"]): ("tree", n["T1"]),
        (1, n["T2"]): ("tree", n["T2"]),
        (2, n["S1"]): ("sub", n["S1"]),
        (2, n["S3"]): ("sub", n["S3"]),
        (2, n["S4"]): ("sub", n["S4"]),
        (2, n["T1"]): ("sub", n["T1"]),
    }
    for key, page_key in compared.items():
        assert result.figures[key].value == pytest.approx(expected[page_key], abs=1e-12, nan_ok=False), key
    assert result.figures[(1, n["T1"])].value is not None
    assert result.layers == selection.layers


@pytest.mark.parametrize("usernames", [LAYERS, ["coder_a", "coder_c"], ["coder_a", "consensus"]])
def test_alpha_equals_an_independent_computation_for_every_row(project, supervisor, study, usernames):
    selection = selection_for(project, supervisor, usernames)

    result = stats.node_agreement(project, selection)

    for key, group_ids in groups(study).items():
        expected = oracle(project, usernames, group_ids)
        actual = result.figures[key].value
        if expected is None:
            assert actual is None, key
            assert result.figures[key].reason.startswith("no variation"), key
        else:
            assert actual == pytest.approx(expected, abs=1e-12), key
    # Coverage: coder_c did not finish two policies, the consensus coded all but three.
    left_out = (NOT_DONE_BY_C if "coder_c" in usernames else set()) | (
        NO_CONSENSUS if "consensus" in usernames else set()
    )
    assert result.coverage.compared == 44 - len(left_out)
    assert result.coverage.clauses == 10 * (44 - len(left_out))


def test_alpha_follows_the_dashboard_filters(project, supervisor, study):
    selection = selection_for(project, supervisor, LAYERS)
    filters = stats.PolicyFilter(jurisdictions=("Beijing", "Central"), year_from=2012)
    numbers = set(stats.policies(project, filters).values_list("number", flat=True))

    result = stats.node_agreement(project, selection, filters)

    assert 0 < len(numbers) < 44
    assert result.coverage.considered == len(numbers)
    assert result.coverage.compared == len(numbers - NOT_DONE_BY_C - NO_CONSENSUS)
    for key, group_ids in groups(study).items():
        expected = oracle(project, LAYERS, group_ids, numbers)
        actual = result.figures[key].value
        assert (actual is None) == (expected is None), key
        if expected is not None:
            assert actual == pytest.approx(expected, abs=1e-12), key


def test_alpha_needs_two_layers_and_leaves_all_coders_out(project, supervisor, study):
    summed_in = selection_for(project, supervisor, ["coders", "coder_a", "consensus"])
    alone = selection_for(project, supervisor, ["coders", "coder_a"])

    result = stats.node_agreement(project, summed_in)

    assert [layer.key for layer in result.layers][-1] == "consensus"
    assert len(result.layers) == 2
    expected = command_alphas(coders="coder_a,consensus")
    t1 = study["T1"].pk
    assert result.figures[(1, t1)].value == pytest.approx(expected[("tree", t1)], abs=1e-12)
    with pytest.raises(ValidationError, match="Agreement compares two or more layers"):
        stats.node_agreement(project, alone)


def test_alpha_without_finished_policies_says_why(project, supervisor, study):
    DoneMark.objects.filter(coder__username="coder_b").delete()
    selection = selection_for(project, supervisor, ["coder_a", "coder_b"])

    result = stats.node_agreement(project, selection)

    assert result.coverage.compared == 0
    assert {f.value for f in result.figures.values()} == {None}
    assert all("no policy is marked done by every chosen coder" in f.reason for f in result.figures.values())


def test_alpha_is_a_fixed_number_of_queries(project, supervisor, study, django_assert_max_num_queries):
    selection = selection_for(project, supervisor, LAYERS)
    nodes = stats.codebook(project)

    with django_assert_max_num_queries(7):
        stats.node_agreement(project, selection, stats.PolicyFilter(jurisdictions=("Beijing",)), nodes=nodes)
