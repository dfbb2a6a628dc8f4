"""Codebook files: reading JSON and CSV, writing them, the round trip, and services.import_codebook."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from coding import codebook_io, services
from coding.codebook_io import CodebookEntry, export_csv, export_json, join_path, read_codebook, split_path
from coding.models import Event, Node
from tests.coding.documents import database_state
from tests.factories import ProjectFactory

DEMO = Path(__file__).resolve().parents[2] / "fixtures" / "demo_codebook.json"


def node(pk, name, parent=None, position=0, description="", colour="#ffe08a", shortcut=""):
    return SimpleNamespace(
        pk=pk, parent_id=parent, name=name, position=position, description=description, colour=colour, shortcut=shortcut
    )


def test_paths_split_and_join_with_escapes():
    names = ["Supply-based", "Talent > people", "a\\b"]

    assert join_path(names) == "Supply-based > Talent \\> people > a\\\\b"
    assert split_path(join_path(names)) == names
    assert split_path("Supply-based>Talent") == ["Supply-based", "Talent"]


def test_export_orders_siblings_by_position_then_id():
    nodes = [
        node(3, "Demand-based", position=3),
        node(1, "Supply-based", position=1, shortcut="s"),
        node(5, "Talent", parent=1, position=2),
        node(4, "Infrastructure", parent=1, position=2),
        node(2, "Environmental-based", position=2),
    ]

    assert export_csv(nodes).splitlines() == [
        "path,description,colour,shortcut",
        "Supply-based,,#ffe08a,s",
        "Supply-based > Infrastructure,,#ffe08a,",
        "Supply-based > Talent,,#ffe08a,",
        "Environmental-based,,#ffe08a,",
        "Demand-based,,#ffe08a,",
    ]
    tree = json.loads(export_json(nodes))
    assert [n["name"] for n in tree] == ["Supply-based", "Environmental-based", "Demand-based"]
    assert [n["name"] for n in tree[0]["children"]] == ["Infrastructure", "Talent"]


def test_reading_the_demo_codebook_gives_18_entries_in_tree_order():
    parsed = read_codebook("demo_codebook.json", DEMO.read_bytes())

    assert parsed.problems == []
    assert len(parsed.entries) == 18
    assert parsed.entries[0] == CodebookEntry(
        path=("Supply-based",),
        description=parsed.entries[0].description,
        colour="#8fbcef",
        shortcut="s",
        row=1,
        row_label="node",
    )
    assert parsed.entries[1].path == ("Supply-based", "Talent")
    assert parsed.entries[5].path == ("Supply-based", "Others") and parsed.entries[5].shortcut is None


def test_csv_with_chinese_headers_in_gbk_reads():
    data = "路径,定义,颜色\n供给型 > 人才,培养人才,#cfe2fb\n".encode("gbk")

    parsed = read_codebook("codebook.csv", data)

    assert parsed.problems == []
    assert parsed.entries == [CodebookEntry(("供给型", "人才"), "培养人才", "#cfe2fb", None, 2)]


def test_flat_json_with_paths_reads():
    data = json.dumps([{"path": "A > B", "colour": "#000000"}, {"path": ["A", "C"]}]).encode()

    parsed = read_codebook("flat.json", data)

    assert [e.path for e in parsed.entries] == [("A", "B"), ("A", "C")]


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        (
            "c.csv",
            "name\nA\n",
            "c.csv: c.csv has no path column (e.g. 'Supply-based > Talent'); the headers found are 'name'",
        ),
        ("c.csv", "path,colour\nA,red\n", "c.csv, row 2, colour: 'red' is not a colour; write it as #rrggbb"),
        ("c.csv", "path\nA > \n", "c.csv, row 2, path: the path has an empty name"),
        ("c.csv", "path\nA\nA\n", "c.csv, row 3, path: 'A' is also on row 2"),
        ("c.csv", "path,shortcut\nA,ab\n", "c.csv, row 2, shortcut: 'ab' is not a shortcut; use one character"),
        ("c.csv", "path,shortcut\nA,a\nB,a\n", "c.csv, row 3, shortcut: 'a' is also the shortcut of 'A'"),
        ("c.json", '{"nodes": 3}', "c.json: c.json must hold a list of nodes"),
        ("c.json", "[{", "c.json: c.json is not valid JSON (line 1, column 3"),
        ("c.json", '[{"name": ""}]', "c.json, node 1, name: the path has an empty name"),
        ("c.xml", "<x/>", "c.xml: c.xml is not a codebook file; use .json or .csv"),
        ("c.csv", b"", "c.csv: c.csv is empty"),
        ("c.csv", "path\n" + "长" * 201 + "\n", "c.csv, row 2, path: the name '长长长"),
    ],
)
def test_codebook_file_problems_are_located(name, data, expected):
    parsed = read_codebook(name, data if isinstance(data, bytes) else data.encode())

    assert str(parsed.problems[0]).startswith(expected), [str(p) for p in parsed.problems]
    assert len(parsed.problems) == 1


# --- writing through the service -------------------------------------------------------------


@pytest.mark.django_db
def test_codebook_round_trip_export_import_export_gives_the_same_file(admin_user, project):
    parsed = read_codebook("demo_codebook.json", DEMO.read_bytes())
    services.import_codebook(actor=admin_user, project=project, entries=parsed.entries)
    Node.objects.filter(project=project, name="Talent").update(name="Talent > people")  # a name that needs escaping
    for fmt, export in (("csv", export_csv), ("json", export_json)):
        first = export(Node.objects.for_project(project))
        copy = ProjectFactory(slug=f"copy-{fmt}")

        again = read_codebook(f"c.{fmt}", first.encode())
        services.import_codebook(actor=admin_user, project=copy, entries=again.entries)

        assert again.problems == []
        assert export(Node.objects.for_project(copy)) == first


@pytest.mark.django_db
def test_import_codebook_writes_one_event_per_node_and_updates_existing_paths(admin_user, project, node):
    entries = [
        CodebookEntry(("Supply-based",), "Government puts elements in", "#8fbcef", "s", 2),
        CodebookEntry(("Supply-based", "Talent"), "People", None, None, 3),
        CodebookEntry(("Demand-based", "Smart Application"), None, None, None, 4),
    ]

    result = services.import_codebook(actor=admin_user, project=project, entries=entries)

    assert (result.created, result.updated, result.unchanged) == (3, 1, 0)
    node.refresh_from_db()
    assert (node.description, node.colour, node.shortcut) == ("Government puts elements in", "#8fbcef", "s")
    demand = Node.objects.get(project=project, name="Demand-based")
    assert demand.description == "" and Node.objects.get(parent=demand).name == "Smart Application"
    assert Event.objects.filter(action="node.create").count() == 1 + 3  # the fixture's node, then three
    assert Event.objects.filter(action="node.update").count() == 1


@pytest.mark.django_db
def test_import_codebook_is_all_or_nothing(admin_user, project, node):
    services.update_node(actor=admin_user, node=node, shortcut="s")
    before = database_state()
    entries = [CodebookEntry(("New",), None, None, None, 2), CodebookEntry(("Other",), None, None, "s", 3)]

    with pytest.raises(services.ImportRefused) as refused:
        services.import_codebook(actor=admin_user, project=project, entries=entries, source="c.csv")

    assert [str(p) for p in refused.value.problems] == ["c.csv, row 3: Shortcut 's' is already used by another node."]
    assert database_state() == before


def test_module_has_no_django_model_imports():
    source = Path(codebook_io.__file__).read_text(encoding="utf-8")

    assert "coding.models" not in source and "django" not in source
