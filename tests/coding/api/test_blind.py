"""Blind coding through every read endpoint: a coder never receives another coder's (or the
consensus layer's) references, figures or names, whatever filter they try. Each answer is a
refusal (403/404) or holds the coder's own layer only."""

import pytest

from coding import services
from coding.models import Reference

from .conftest import code

pytestmark = pytest.mark.django_db

BASE = "/api/projects/study/"
SECRET = "SECRET-MEMO"


@pytest.fixture
def hidden(project, policy, node, admin_user, coder_a, coder_b, supervisor):
    """coder_a codes clause 1; coder_b codes clauses 2 and 3, and the supervisor clause 3 in the
    consensus layer, with memos that must never reach coder_a. Everyone marked the policy done."""
    talent = services.add_node(actor=admin_user, project=project, name="Talent", parent=node)
    services.update_policy(actor=admin_user, policy=policy, jurisdiction="Jining", release_date="2017")
    own = code(policy, talent, coder_a, 1, memo="mine")
    theirs = [code(policy, talent, coder_b, n, memo=f"{SECRET} b{n}") for n in (2, 3)]
    consensus = code(policy, talent, supervisor, 3, consensus=True, memo=f"{SECRET} consensus")
    for user in (coder_a, coder_b):
        services.mark_policy_done(actor=user, policy=policy, coder=user)
    return {"own": own, "theirs": theirs, "consensus": consensus, "talent": talent, "node": node}


def reads(hidden, coder_a, coder_b) -> list[str]:
    other, consensus, talent = hidden["theirs"][0], hidden["consensus"], hidden["talent"]
    layer_tries = ["coders", "consensus", str(coder_b.pk), f"{coder_a.pk}&layer={coder_b.pk}"]
    return [
        "",
        "policies/",
        "policies/1/",
        "policies/1/clauses/2/",
        "nodes/",
        f"nodes/{talent.pk}/",
        "references/",
        f"references/?coder={coder_b.username}",
        "references/?layer=consensus",
        "references/?layer=coder",
        "references/?policy=1",
        "references/?clause=1-2",
        "references/?clause=1-3&layer=consensus",
        f"references/?node={talent.pk}",
        f"references/{other.pk}/",
        f"references/{consensus.pk}/",
        "distribution/",
        "distribution/?by=jurisdiction",
        *(f"distribution/?layer={layer}" for layer in layer_tries),
        *(f"distribution/?layer={layer}&mode=side" for layer in layer_tries),
        *(f"distribution/?layer={layer}&by=year" for layer in layer_tries),
        "trend/",
        *(f"trend/?layer={layer}" for layer in layer_tries),
        "words/",
        "search/?q=智慧城市",
        "agreement/",
        "agreement/?coders=coder_a,coder_b",
        "agreement/disagreements/?coders=coder_a,coder_b",
        "members/",
        f"members/{coder_b.username}/",
        "nodes/export/json/",
        "nodes/export/csv/",
        "references/export/csv/",
        f"references/export/csv/?coder={coder_b.username}",
        "references/export/csv/?layer=consensus",
        "references/export/csv/?clause=1-3",
        f"references/export/csv/?node={talent.pk}",
        "interchange/qdpx/",
        "interchange/qdc/",
    ]


def test_a_blind_coder_reads_nothing_of_other_layers(api_as, hidden, coder_a, coder_b):
    client = api_as(coder_a)

    for path in reads(hidden, coder_a, coder_b):
        response = client.get(BASE + path if path else "/api/projects/")
        body = response.getvalue().decode()  # files are streamed
        assert response.status_code in (200, 403, 404), path
        assert SECRET not in body, path
        assert "coder_b" not in body and "supervisor_p" not in body, path
        if path.startswith("references/?") or path == "references/":
            assert {row["id"] for row in response.json()["results"]} <= {hidden["own"].pk}, path


def test_a_blind_coders_figures_count_their_own_layer(api_as, hidden, coder_a):
    client = api_as(coder_a)

    distribution = client.get(f"{BASE}distribution/").json()
    crosstab = client.get(f"{BASE}distribution/?by=jurisdiction").json()
    trend = client.get(f"{BASE}trend/").json()
    references = client.get(f"{BASE}references/").json()

    assert distribution["totals"] == [{"layer": "sum", "references": 1, "policies": 1}]
    assert [r["total"] for r in crosstab["crosstab"]["rows"] if r["path"] == "Total"] == [1.0]
    assert [r["total"] for r in trend["rows"] if r["path"] == "Total"] == [1]
    assert [r["id"] for r in references["results"]] == [hidden["own"].pk]


def test_a_blind_coder_cannot_change_other_layers(api_as, hidden, coder_a):
    client = api_as(coder_a)

    for reference in (*hidden["theirs"], hidden["consensus"]):
        path = f"{BASE}references/{reference.pk}/"
        patched = client.patch(path, {"version": 1, "memo": "x"}, format="json")
        deleted = client.delete(f"{path}?version=1")
        assert patched.status_code == deleted.status_code == 404  # the same as a reference that does not exist
        assert SECRET not in patched.content.decode()
        reference.refresh_from_db()
        assert reference.memo.startswith(SECRET)


def test_a_blind_coder_cannot_restore_or_probe_other_layers_deletions(api_as, hidden, coder_b, supervisor):
    theirs = services.delete_reference(actor=coder_b, reference=hidden["theirs"][0])
    consensus = services.delete_reference(actor=supervisor, reference=hidden["consensus"])
    coder_a = hidden["own"].coder
    client = api_as(coder_a)

    for event in (theirs, consensus):
        response = client.post(f"{BASE}references/restore/", {"deletion": event.pk}, format="json")
        # The same answer as for an id that names no deletion at all: nothing about the layer leaks.
        assert response.status_code == 404 and response.json() == {"detail": "No such deletion."}
    assert client.post(f"{BASE}references/restore/", {"deletion": 10**6}, format="json").json() == {
        "detail": "No such deletion."
    }
    assert not Reference.objects.filter(pk__in=[theirs.target_id, consensus.target_id]).exists()


def test_reviewers_do_see_every_layer(api_as, hidden, supervisor):
    body = api_as(supervisor).get(f"{BASE}references/").content.decode()

    assert body.count(SECRET) == 3 and "coder_b" in body
