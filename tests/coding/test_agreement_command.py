"""`manage.py agreement` prints the same figures as the agreement page."""

import io
import json
import re

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from coding import services
from tests.coding.test_agreement_data import code, done, make_policy

pytestmark = pytest.mark.django_db


@pytest.fixture
def study(project, admin_user, supervisor, coder_a, coder_b, policy):
    """Two coded policies (one with 𠀀), differences at both levels, one decision taken."""
    r1 = services.add_node(actor=admin_user, project=project, name="R1")
    r2 = services.add_node(actor=admin_user, project=project, name="R2")
    a = services.add_node(actor=admin_user, project=project, name="A", parent=r1)
    b = services.add_node(actor=admin_user, project=project, name="B", parent=r1)
    c = services.add_node(actor=admin_user, project=project, name="C", parent=r2)
    second = make_policy(project, admin_user, 6)
    for p, coder, clause, node, span in [
        (policy, coder_a, 1, a, (0, None)),
        (policy, coder_b, 1, b, (0, 4)),
        (policy, coder_a, 3, c, (2, 9)),
        (policy, coder_b, 3, c, (0, 9)),
        (second, coder_a, 1, a, (0, None)),
        (second, coder_b, 1, a, (0, None)),
        (second, coder_a, 2, b, (0, None)),
        (second, coder_b, 4, c, (1, 5)),
        (second, coder_a, 5, c, (0, None)),
        (second, coder_b, 5, c, (0, None)),
        (second, coder_b, 6, a, (0, 3)),
    ]:
        code(coder, p, clause, node, *span)
    done(policy, coder_a, coder_b)
    done(second, coder_a, coder_b)
    services.adjudicate(
        actor=supervisor,
        clause=policy.clauses.get(number=1),
        node=r1,
        scope="subtree",
        decision="accept",
        coders=[coder_a, coder_b],
        accepted=coder_b,
    )
    return {"A": a, "B": b, "C": c}


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("agreement", "--project", "study", *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("coders", ["coder_a,coder_b", "coder_a,consensus"])
@pytest.mark.parametrize("level", ["sub", "tree", "both"])
@pytest.mark.parametrize("unit", ["clause", "character"])
def test_command_json_equals_the_pages_figures(client, study, supervisor, coders, level, unit):
    client.force_login(supervisor)
    page = client.get(reverse("coding:agreement", args=["study"]), {"coders": coders, "level": level, "unit": unit})

    printed = json.loads(run("--coders", coders, "--level", level, "--unit", unit, "--format", "json"))

    assert printed == json.loads(json.dumps(page.context["report"].as_dict()))
    assert printed["coverage"]["compared"] == (2 if coders == "coder_a,coder_b" else 1)


def test_figures_rendered_on_the_page_are_the_commands(client, study, supervisor):
    client.force_login(supervisor)
    html = client.get(
        reverse("coding:agreement", args=["study"]), {"coders": "coder_a,coder_b", "level": "tree"}
    ).content.decode()

    printed = json.loads(run("--coders", "coder_a,coder_b", "--level", "tree", "--format", "json"))

    shown = []
    for node in ("R1", "R2"):
        row = re.search(r"<td><a [^>]*>" + node + r"</a></td>(.*?)</tr>", html, re.S).group(1)
        cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        shown.append(cells[-2:])  # kappa, alpha as shown (3 decimals)
    expected = [
        [f"{row['cohen_kappa']:.3f}", f"{row['krippendorff_alpha']:.3f}"] for row in printed["levels"]["tree"]["nodes"]
    ]
    assert shown == expected
    masi = next(r for r in printed["levels"]["tree"]["overall"] if r["figure"] == "masi_alpha")["value"]
    assert f"{masi:.3f}" in html


def test_csv_output_equals_the_pages_download(client, study, supervisor):
    client.force_login(supervisor)
    url = reverse("coding:agreement_export", args=["study", "policies", "csv"])
    download = client.get(url, {"coders": "coder_a,coder_b", "level": "both", "unit": "character"})

    printed = run(
        "--coders",
        "coder_a,coder_b",
        "--level",
        "both",
        "--unit",
        "character",
        "--format",
        "csv",
        "--table",
        "policies",
    )

    assert printed == download.content.decode("utf-8-sig")
    assert printed.splitlines()[0].startswith("level,policy,title,clauses,coded_clauses_coder_a,coded_clauses_coder_b")


def test_table_output_prints_every_table_with_the_coverage(study):
    printed = run("--coders", "coder_a,coder_b")

    lines = printed.splitlines()
    assert lines[0] == "Compared 2 of 2 policies (10 clauses), coders coder_a, coder_b, unit clause."
    assert [line for line in lines if line in ("nodes", "overall", "pairs", "policies")] == [
        "nodes",
        "overall",
        "pairs",
        "policies",
    ]
    assert re.search(r"^sub\s+\d+\s+R1 › A\s+10\s+2\s+2\s+2\s+0\s+0\.8000\s+0\.3750\s+0\.4062\s", printed, re.M)


def test_policy_filter_and_left_out_policies_are_reported(study):
    printed = run("--coders", "coder_a,coder_b", "--policies", "2")

    assert printed.splitlines()[0] == "Compared 1 of 1 policies (6 clauses), coders coder_a, coder_b, unit clause."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--project", "nowhere", "--coders", "a,b"), "There is no project with slug 'nowhere'."),
        (
            ("--project", "study", "--coders", "coder_a"),
            "Choose two or more coders, or the consensus layer and a coder.",
        ),
        (("--project", "study", "--coders", "coder_a,ghost"), "No member of this project is called 'ghost'."),
        (
            ("--project", "study", "--coders", "coder_a,coder_b", "--policies", "x"),
            "Policy numbers: 'x' is not a number or a range like 3-7.",
        ),
    ],
)
def test_bad_arguments_say_what_is_wrong(study, args, message):
    with pytest.raises(CommandError) as exc:
        call_command("agreement", *args, stdout=io.StringIO())

    assert str(exc.value) == message
