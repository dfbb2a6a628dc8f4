"""/trend/, /words/, /search/ and /search/code/: the dashboard pages' figures through the API,
checked against counts made here by other means, and nothing a blind coder may not see."""

import re

import pytest
from django.urls import reverse

from coding import services, stats
from coding.access import get_project_for_user
from coding.models import Event, Reference
from tests.conftest import SAMPLE_TEXT
from tests.factories import ProjectFactory

from .conftest import code

pytestmark = pytest.mark.django_db

TREND = "/api/projects/study/trend/"
WORDS = "/api/projects/study/words/"
SEARCH = "/api/projects/study/search/"
SEARCH_CODE = "/api/projects/study/search/code/"


# --- trend -----------------------------------------------------------------------------------------


@pytest.fixture
def years(project, admin_user, node, coder_a, coder_b, supervisor):
    """Policies released in 2019, 2021 and undated; coder_a codes Talent once in each, coder_b
    once in 2019, the supervisor once in 2021 in the consensus layer."""
    talent = services.add_node(actor=admin_user, project=project, name="Talent", parent=node)
    made = [
        services.create_policy(actor=admin_user, project=project, title=f"P{i}", text=SAMPLE_TEXT, release_date=date)
        for i, date in enumerate(["2019-05", "2021", ""], start=1)
    ]
    for policy in made:
        code(policy, talent, coder_a, 1)
    code(made[0], talent, coder_b, 2)
    code(made[1], talent, supervisor, 2, consensus=True)
    return {"policies": made, "talent": talent}


def row(body: dict, path: str) -> tuple[dict, int]:
    [found] = [r for r in body["rows"] if r["path"] == path]
    return found["cells"], found["total"]


def test_coder_reads_the_trend_of_their_own_layer(api_as, years, coder_a):
    body = api_as(coder_a).get(TREND).json()

    assert [layer["key"] for layer in body["layers"]] == [str(coder_a.pk)]
    assert body["years"] == ["2019", "2020", "2021", "(none)"]
    assert row(body, "Supply-based > Talent") == ({"2019": 1, "2020": 0, "2021": 1, "(none)": 1}, 3)
    assert row(body, "Total") == ({"2019": 1, "2020": 0, "2021": 1, "(none)": 1}, 3)
    assert body["undated"] == 1


@pytest.mark.parametrize("persona", ["supervisor", "admin_user"])
def test_reviewers_read_every_coder_or_the_consensus(api_as, years, persona, request):
    client = api_as(request.getfixturevalue(persona))

    coders = client.get(TREND).json()
    consensus = client.get(f"{TREND}?layer=consensus").json()

    assert row(coders, "Supply-based > Talent") == ({"2019": 2, "2020": 0, "2021": 1, "(none)": 1}, 4)
    assert row(consensus, "Supply-based > Talent") == ({"2021": 1}, 1)
    assert consensus["undated"] == 0


def test_trend_equals_the_dashboards_table(api_as, years, supervisor, coder_a):
    acc = get_project_for_user(supervisor, "study")
    nodes = stats.codebook(acc.project)
    selection = stats.resolve_layers(acc, [str(coder_a.pk), "consensus"])
    counts = stats.tally_counts(acc.project, stats.LayerSelection(selection.layers), by="year", nodes=nodes)
    frame = stats.crosstab(counts, nodes, "year", fill_years=True)

    body = api_as(supervisor).get(f"{TREND}?layer={coder_a.pk}&layer=consensus").json()

    assert [r["path"] for r in body["rows"]] == frame["path"].tolist()
    for got, want in zip(body["rows"], frame.to_dict("records"), strict=True):
        assert got["cells"] == {year: want[year] for year in body["years"]}
        assert got["total"] == want["Total"]


def test_trend_filters_narrow_the_policies(api_as, years, supervisor):
    body = api_as(supervisor).get(f"{TREND}?year_from=2020").json()

    assert body["years"] == ["2021"]
    assert row(body, "Supply-based > Talent") == ({"2021": 1}, 1)


@pytest.mark.parametrize("layer", ["coders", "consensus", "coder_b"])
def test_blind_coder_gets_no_other_layers_trend(api_as, years, coder_a, coder_b, layer):
    key = str(coder_b.pk) if layer == "coder_b" else layer

    for query in (f"layer={key}", f"layer={coder_a.pk}&layer={key}"):
        response = api_as(coder_a).get(f"{TREND}?{query}")
        assert response.status_code == 403, query
        assert "blind" in response.json()["detail"]


def test_without_blind_coding_a_coder_reads_every_coder(api_as, years, project, admin_user, coder_a):
    services.update_project(actor=admin_user, project=project, blind_coding=False)

    body = api_as(coder_a).get(f"{TREND}?layer=coders").json()

    assert row(body, "Supply-based > Talent")[1] == 4


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("layer=nobody", "non_field_errors"),
        ("year_from=abc", "year_from"),
        ("year_from=2021&year_to=2019", "non_field_errors"),
        ("policies=x", "policies"),
        ("attr=novalue", "attr"),
    ],
)
def test_bad_trend_queries_are_field_level_400s(api_as, years, supervisor, query, field):
    response = api_as(supervisor).get(f"{TREND}?{query}")

    assert response.status_code == 400 and list(response.json()) == [field]


@pytest.mark.parametrize("item_count", [1, 3])
def test_trend_query_count(api_as, project, admin_user, node, coder_a, django_assert_num_queries, item_count):
    for year in range(2015, 2015 + item_count):
        policy = services.create_policy(
            actor=admin_user, project=project, title=str(year), text=SAMPLE_TEXT, release_date=str(year)
        )
        code(policy, node, coder_a, 1)
    client = api_as(coder_a)

    with django_assert_num_queries(4):  # token + user, membership, codebook, tally (one aggregate query)
        body = client.get(TREND).json()

    assert row(body, "Supply-based")[1] == item_count


# --- word frequency --------------------------------------------------------------------------------

TEXTS = {
    "Smart city": "Smart city data sharing. Data security and data governance.",
    "Planning": "City planning and data.",
}


@pytest.fixture
def english(project, admin_user):
    return [
        services.create_policy(
            actor=admin_user, project=project, title=title, text=text, jurisdiction=f"J{i}", rule="paragraph"
        )
        for i, (title, text) in enumerate(TEXTS.items(), start=1)
    ]


def expected_words(texts) -> list[tuple[str, int, int]]:
    counts, policies = {}, {}
    for text in texts:
        words = [w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 2 and w not in stats.DEFAULT_STOPWORDS]
        for word in words:
            counts[word] = counts.get(word, 0) + 1
        for word in set(words):
            policies[word] = policies.get(word, 0) + 1
    return sorted(((w, n, policies[w]) for w, n in counts.items()), key=lambda item: (-item[1], item[0]))


@pytest.mark.parametrize("persona", ["admin_user", "supervisor", "coder_a"])
def test_members_read_word_frequencies(api_as, english, persona, request):
    body = api_as(request.getfixturevalue(persona)).get(WORDS).json()

    want = expected_words(TEXTS.values())
    assert [(w["word"], w["count"], w["policies"]) for w in body["words"]] == want
    assert [w["rank"] for w in body["words"]] == list(range(1, len(want) + 1))
    total = sum(n for _, n, _ in want)
    assert body["words"][0]["share"] == pytest.approx(4 / total)
    assert (body["policies"], body["custom_stopwords"]) == (2, False)
    assert body["stopwords"] == len(stats.DEFAULT_STOPWORDS)


def test_words_follow_filters_options_and_the_projects_stopwords(api_as, english, project, admin_user, coder_a):
    services.set_project_stopwords(actor=admin_user, project=project, words=["data", "and"])
    client = api_as(coder_a)

    one = client.get(f"{WORDS}?jurisdiction=J2").json()
    top = client.get(f"{WORDS}?top=2&min_length=5").json()

    assert [(w["word"], w["count"]) for w in one["words"]] == [("city", 1), ("planning", 1)]
    assert (one["policies"], one["stopwords"], one["custom_stopwords"]) == (1, 2, True)
    assert [w["word"] for w in top["words"]] == ["governance", "planning"]


def test_words_take_the_pages_defaults(api_as, client, project, admin_user, coder_a):
    # 60 words of 2-3 letters, counted 1..60 times, and one-letter words counted most: the
    # defaults (length 2 and up, top 50) decide which appear.
    names = [a + b for a in "bcdfghjklm" for b in "aeiouy"]
    text = " ".join(["x y z"] * 70 + [" ".join(names[: i + 1]) for i in range(len(names))])
    services.create_policy(actor=admin_user, project=project, title="Words", text=text, rule="paragraph")
    client.force_login(coder_a)

    body = api_as(coder_a).get(WORDS).json()
    page = client.get(reverse("coding:dashboard_words", args=[project.slug]) + "?run=1&export=csv")

    lines = page.content.decode("utf-8-sig").splitlines()[1:]
    assert page.status_code == 200 and len(lines) == len(body["words"]) == 50
    assert [line.split(",")[1:3] for line in lines] == [[w["word"], str(w["count"])] for w in body["words"]]
    assert {"x", "y", "z"}.isdisjoint(w["word"] for w in body["words"])


@pytest.mark.parametrize(
    ("query", "field"),
    [("top=0", "top"), ("top=1001", "top"), ("min_length=x", "min_length"), ("threshold=101", "threshold")],
)
def test_bad_word_queries_are_field_level_400s(api_as, english, coder_a, query, field):
    response = api_as(coder_a).get(f"{WORDS}?{query}")

    assert response.status_code == 400 and list(response.json()) == [field]


@pytest.mark.parametrize("item_count", [1, 3])
def test_words_query_count(api_as, project, admin_user, coder_a, django_assert_num_queries, item_count):
    for i in range(item_count):
        services.create_policy(actor=admin_user, project=project, title=f"P{i}", text="Data sharing.")
    client = api_as(coder_a)

    with django_assert_num_queries(3):  # token + user, membership, texts
        body = client.get(WORDS).json()

    assert body["words"][0]["count"] == item_count


# --- text search -----------------------------------------------------------------------------------


def hits_of(body: dict) -> list[tuple]:
    return [(h["label"], h["start"], h["end"], h["match"]) for h in body["results"]]


@pytest.mark.parametrize("persona", ["admin_user", "supervisor", "coder_a"])
def test_members_search_the_texts(api_as, policy, persona, request):
    body = api_as(request.getfixturevalue(persona)).get(f"{SEARCH}?q=智慧城市").json()

    spans = [(m.start(), m.end()) for m in re.finditer("智慧城市", SAMPLE_TEXT)]
    assert [(h[1], h[2]) for h in hits_of(body)] == spans
    assert [h[0] for h in hits_of(body)] == ["1-0", "1-1", "1-2"]
    assert (body["count"], body["total"], body["truncated"]) == (3, 3, False)
    second = body["results"][1]
    # 30 characters of context either side, line breaks shown as one space
    before = SAMPLE_TEXT[max(0, second["start"] - 30) : second["start"]]
    assert second["before"] == " ".join(before.split()) == "济宁市智慧城市促进条例 第一章 总则 第一条 为了促进"
    assert second["after"] == " ".join(SAMPLE_TEXT[second["end"] : second["end"] + 30].split())
    assert second["key"] == f"1:{second['start']}:{second['end']}"


def test_a_hit_in_a_heading_has_no_clause(api_as, policy, coder_a):
    [hit] = api_as(coder_a).get(f"{SEARCH}?q=总则").json()["results"]

    assert (hit["label"], hit["clause"], hit["start"]) == ("1 (no clause)", None, SAMPLE_TEXT.index("总则"))


def test_search_modes_and_paging(api_as, policy, coder_a):
    client = api_as(coder_a)

    regex = client.get(SEARCH, {"q": "第[一二]条", "mode": "regex", "page_size": 1}).json()
    second = client.get(regex["next"]).json()

    assert regex["count"] == 2 and [h[0] for h in hits_of(regex)] == ["1-1"]
    assert [h[0] for h in hits_of(second)] == ["1-2"]
    assert client.get(SEARCH, {"q": "第[一二]条", "mode": "regex", "page": 9}).status_code == 404


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "q"),
        ({"q": "  "}, "q"),
        ({"q": "(", "mode": "regex"}, "q"),
        ({"q": "a{99999999999}", "mode": "regex"}, "q"),
        ({"q": "a*", "mode": "regex"}, "q"),
        ({"q": "two words", "mode": "word"}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"q": "数据", "mode": "fuzzy"}, "mode"),
        ({"q": "数据", "year_from": "x"}, "year_from"),
    ],
)
def test_bad_searches_are_field_level_400s(api_as, policy, coder_a, query, field):
    response = api_as(coder_a).get(SEARCH, query)

    assert response.status_code == 400 and list(response.json()) == [field]


def test_a_regex_search_stopped_for_taking_too_long_is_a_400_on_q(api_as, project, admin_user, coder_a, monkeypatch):
    monkeypatch.setattr(stats, "REGEX_SECONDS", 0.3)
    services.create_policy(actor=admin_user, project=project, title="Trap", text="第一条　" + "a" * 32 + "!\n")

    response = api_as(coder_a).get(SEARCH, {"q": "(a+)+$", "mode": "regex"})

    assert response.status_code == 400
    assert list(response.json()) == ["q"] and "was stopped after 0.3 seconds" in response.json()["q"][0]


@pytest.mark.parametrize("item_count", [1, 3])
def test_search_query_count(api_as, project, admin_user, coder_a, django_assert_num_queries, item_count):
    for i in range(item_count):
        services.create_policy(actor=admin_user, project=project, title=f"P{i}", text=SAMPLE_TEXT)
    client = api_as(coder_a)

    with django_assert_num_queries(4):  # token + user, membership, texts, their clauses
        body = client.get(f"{SEARCH}?q=数据").json()

    assert body["count"] == item_count


# --- coding search hits ----------------------------------------------------------------------------


def layer_of(user) -> list[tuple]:
    return list(Reference.objects.filter(coder=user, consensus=False).values_list("node", "start", "end", "memo"))


@pytest.mark.parametrize("persona", ["admin_user", "supervisor", "coder_a"])
def test_members_code_hits_in_their_own_layer(api_as, policy, node, persona, request):
    user = request.getfixturevalue(persona)
    hit = api_as(user).get(f"{SEARCH}?q=智慧城市").json()["results"][1]
    last = Event.objects.latest("pk").pk

    response = api_as(user).post(
        SEARCH_CODE, {"q": "智慧城市", "node": node.pk, "hits": [hit["key"]], "memo": "m"}, format="json"
    )

    assert response.status_code == 200 and response.json() == {"hits": 1, "created": 1}
    assert layer_of(user) == [(node.pk, hit["start"], hit["end"], "m")]
    assert not Reference.objects.filter(consensus=True).exists()
    assert list(Event.objects.filter(pk__gt=last).values_list("actor", "action")) == [(user.pk, "reference.create")]


def test_coding_every_hit_skips_headings(api_as, policy, node, coder_a):
    payload = {"q": "智慧城市|总则", "mode": "regex", "node": node.pk, "all": True}

    response = api_as(coder_a).post(SEARCH_CODE, payload, format="json")

    assert response.json() == {"hits": 3, "created": 3}  # 总则 is in the chapter heading
    assert sorted(start for _, start, _, _ in layer_of(coder_a)) == [
        m.start() for m in re.finditer("智慧城市", SAMPLE_TEXT)
    ]


def test_another_coders_coding_neither_blocks_nor_shows(api_as, policy, node, coder_a, coder_b):
    start = SAMPLE_TEXT.index("智慧城市", 19)
    clause = policy.clauses.get(number=1)
    services.add_reference(actor=coder_b, clause=clause, node=node, start=start, end=start + 4, coder=coder_b)
    payload = {"q": "智慧城市", "node": node.pk, "hits": [f"1:{start}:{start + 4}"]}

    first = api_as(coder_a).post(SEARCH_CODE, payload, format="json")
    again = api_as(coder_a).post(SEARCH_CODE, payload, format="json")

    assert first.json() == {"hits": 1, "created": 1}
    assert again.json() == {"hits": 1, "created": 0}  # only their own layer counts
    assert layer_of(coder_a) == [(node.pk, start, start + 4, "")]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"q": "智慧城市", "hits": ["1:19:23"]}, "node"),
        ({"q": "智慧城市", "node": 999999, "all": True}, "node"),
        ({"q": "智慧城市", "node": "foreign", "all": True}, "node"),
        ({"q": "智慧城市", "node": "own"}, "hits"),
        ({"q": "智慧城市", "node": "own", "hits": ["1:0:4"]}, "hits"),  # not a hit
        ({"q": "总则", "node": "own", "hits": ["1:14:16"]}, "hits"),  # a hit, but in a heading
        ({"q": "(", "mode": "regex", "node": "own", "all": True}, "q"),
        ({"q": "智慧城市", "node": "own", "all": True, "jurisdiction": "Jining"}, "jurisdiction"),
        ({"q": "智慧城市", "node": "own", "all": True, "year_from": 2021, "year_to": 2019}, "non_field_errors"),
    ],
)
def test_bad_hit_coding_is_a_field_level_400_and_codes_nothing(api_as, policy, node, coder_a, payload, field):
    foreign = services.add_node(actor=None, project=ProjectFactory(slug="x"), name="Foreign")
    if isinstance(payload.get("node"), str):
        payload = payload | {"node": {"own": node.pk, "foreign": foreign.pk}[payload["node"]]}
    before = Event.objects.count()

    response = api_as(coder_a).post(SEARCH_CODE, payload, format="json")

    assert response.status_code == 400 and list(response.json()) == [field]
    assert not Reference.objects.exists() and Event.objects.count() == before


def test_dashboards_need_membership(api_as, anonymous, policy, node, outsider):
    for path in (TREND, WORDS, f"{SEARCH}?q=数据"):
        assert api_as(outsider).get(path).status_code == 404, path
        assert anonymous.get(path).status_code == 401, path
    payload = {"q": "数据", "node": node.pk, "all": True}
    assert api_as(outsider).post(SEARCH_CODE, payload, format="json").status_code == 404
    assert anonymous.post(SEARCH_CODE, payload, format="json").status_code == 401
    assert not Reference.objects.exists()


# --- stop words --------------------------------------------------------------------------------

STOPWORDS = "/api/projects/study/words/stopwords/"


@pytest.mark.parametrize("persona", ["admin_user", "supervisor", "coder_a"])
def test_members_read_the_stop_words(api_as, project, persona, request):
    body = api_as(request.getfixturevalue(persona)).get(STOPWORDS).json()

    assert body == {"words": sorted(stats.DEFAULT_STOPWORDS), "custom": False}


@pytest.mark.parametrize("persona", ["admin_user", "supervisor"])
def test_reviewers_replace_and_reset_the_stop_words(api_as, english, project, persona, request):
    user = request.getfixturevalue(persona)
    client = api_as(user)

    replaced = client.put(STOPWORDS, {"words": [" data ", "Data", "city"]}, format="json")

    assert replaced.status_code == 200 and replaced.json() == {"words": ["data", "city"], "custom": True}
    assert "data" not in [w["word"] for w in client.get(WORDS).json()["words"]]
    assert "and" in [w["word"] for w in client.get(WORDS).json()["words"]]  # no longer a stop word

    reset = client.put(STOPWORDS, {"words": None}, format="json")

    assert reset.json()["custom"] is False
    project.refresh_from_db()
    assert project.stopwords is None
    events = Event.objects.filter(action="project.stopwords", actor=user).order_by("pk")
    assert [e.after for e in events] == [{"stopwords": ["data", "city"]}, {"stopwords": None}]


@pytest.mark.parametrize("payload", [{}, {"words": "data city"}, {"words": ["x" * 101]}, {"words": [" "]}])
def test_bad_stop_words_are_a_field_level_400(api_as, project, supervisor, payload):
    response = api_as(supervisor).put(STOPWORDS, payload, format="json")

    assert response.status_code == 400 and list(response.json()) == ["words"]
    project.refresh_from_db()
    assert project.stopwords is None and not Event.objects.filter(action="project.stopwords").exists()


def test_coders_outsiders_and_anonymous_cannot_change_the_stop_words(api_as, anonymous, project, coder_a, outsider):
    payload = {"words": ["data"]}

    assert api_as(coder_a).put(STOPWORDS, payload, format="json").status_code == 403
    assert api_as(outsider).put(STOPWORDS, payload, format="json").status_code == 404
    assert anonymous.put(STOPWORDS, payload, format="json").status_code == 401
    assert api_as(outsider).get(STOPWORDS).status_code == 404
    project.refresh_from_db()
    assert project.stopwords is None
