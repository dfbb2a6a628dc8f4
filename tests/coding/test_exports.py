import io
import json

import openpyxl
import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from coding import exports, services
from coding.models import Reference
from tests.coding import table3

# --- tables and files (no database) ----------------------------------------------------------


def sample_table() -> exports.Table:
    frame = pd.DataFrame(
        {
            "level": [1, 2, 2],
            "node_id": [1, 2, 3],
            "Node": ["供给型 Supply", "供给型 Supply > =SUM(A1)", "供给型 Supply > Talent\x07"],
            "References": [1234, 0, 1234],
            "Share": [1.0, float("nan"), 1 / 3],
        }
    )
    return exports.Table("distribution", frame, frozenset({"Share"}), hidden=frozenset({"level", "node_id"}))


def test_screen_rows_show_counts_and_shares_to_one_decimal():
    table = sample_table()

    assert [h.text for h in table.headers] == ["Node", "References", "Share"]
    assert [h.numeric for h in table.headers] == [False, True, True]
    assert [[c.text for c in row["cells"]] for row in table.rows] == [
        ["供给型 Supply", "1,234", "100.0%"],
        ["供给型 Supply > =SUM(A1)", "0", "—"],
        ["供给型 Supply > Talent\x07", "1,234", "33.3%"],
    ]
    assert [row["level"] for row in table.rows] == [1, 2, 2]


def test_csv_keeps_exact_values_and_chinese():
    content = exports.to_csv(sample_table())

    assert content.startswith("\ufeff".encode())
    frame = pd.read_csv(io.BytesIO(content), encoding="utf-8-sig")
    assert frame.columns.tolist() == ["Node", "References", "Share"]
    assert frame["Node"][0] == "供给型 Supply"
    assert frame["References"].tolist() == [1234, 0, 1234]
    assert frame["Share"][2] == 1 / 3
    assert pd.isna(frame["Share"][1])


def test_xlsx_keeps_numbers_formats_shares_and_never_writes_formulas():
    content = exports.to_xlsx([sample_table()])

    sheet = openpyxl.load_workbook(io.BytesIO(content))["distribution"]
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert rows[0] == ["Node", "References", "Share"]
    assert rows[1] == ["供给型 Supply", 1234, 1.0]
    assert rows[2] == ["供给型 Supply > =SUM(A1)", 0, None]
    assert sheet.cell(row=3, column=1).data_type == "s"
    assert rows[3][0] == "供给型 Supply > Talent"  # control characters XLSX cannot hold are dropped
    assert rows[3][2] == pytest.approx(1 / 3, rel=1e-15)
    assert sheet.cell(row=2, column=3).number_format == "0.0%"


@pytest.mark.parametrize(
    "value, text",
    [(0.264150943, "26.4%"), (1.0, "100.0%"), (0.0005, "0.1%"), (0.00049, "0.0%"), (float("nan"), "—"), (None, "—")],
)
def test_percent(value, text):
    assert exports.percent(value) == text


def test_sheet_titles_are_made_valid():
    table = exports.Table("crosstab by attr: a/b [x]? and a very long name beyond 31", pd.DataFrame({"a": [1]}))

    book = openpyxl.load_workbook(io.BytesIO(exports.to_xlsx([table])))

    assert book.sheetnames == ["crosstab by attr  a b  x   and "]


# --- the reference list and the commands ------------------------------------------------------


@pytest.fixture
def coded(project, admin_user, supervisor, coder_a, coder_b, policy):
    nodes = table3.build_codebook(project, admin_user)
    clauses = list(policy.clauses.order_by("start"))
    talent = nodes["Supply-based > Talent input"]
    services.add_reference(
        actor=coder_a,
        clause=clauses[3],
        node=talent,
        start=clauses[3].start,
        end=clauses[3].end,
        coder=coder_a,
        memo="人才 =1+1",
    )
    services.add_reference(
        actor=coder_b,
        clause=clauses[1],
        node=nodes["Demand-based"],
        start=clauses[1].start,
        end=clauses[1].start + 4,
        coder=coder_b,
    )
    services.add_reference(
        actor=supervisor, clause=clauses[3], node=talent, start=clauses[3].start, end=clauses[3].end, consensus=True
    )
    return nodes


@pytest.mark.django_db
@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_export_references_writes_every_layer(tmp_path, project, policy, coded, suffix):
    path = tmp_path / f"refs.{suffix}"
    out = io.StringIO()

    call_command("export_references", "--project", "study", "-o", str(path), stdout=out)

    frame = pd.read_csv(path, encoding="utf-8-sig") if suffix == "csv" else pd.read_excel(path)
    assert out.getvalue().strip() == f"3 reference(s) of study written to {path}."
    assert frame.columns.tolist() == exports.REFERENCE_COLUMNS
    clause1 = policy.clauses.get(number=1)
    clause3 = policy.clauses.get(number=3)
    assert frame[["label", "policy", "clause", "node", "layer"]].values.tolist() == [
        ["1-1", 1, 1, "Demand-based", "coder_b"],
        ["1-3", 1, 3, "Supply-based > Talent input", "coder_a"],
        ["1-3", 1, 3, "Supply-based > Talent input", "consensus"],
    ]
    assert frame["text"].tolist()[0] == policy.text[clause1.start : clause1.start + 4]
    assert frame["text"].tolist()[1] == policy.text[clause3.start : clause3.end]
    assert "𠀀" in frame["text"].tolist()[1]  # a character outside the BMP survives both formats
    assert frame["memo"].tolist()[1] == "人才 =1+1"
    assert frame["policy_title"].tolist()[0] == "济宁市智慧城市促进条例"


@pytest.mark.django_db
def test_export_references_of_one_layer(tmp_path, project, coded):
    path = tmp_path / "refs.csv"

    call_command(
        "export_references", "--project", "study", "--layer", "consensus", "-o", str(path), stdout=io.StringIO()
    )
    consensus = pd.read_csv(path, encoding="utf-8-sig")
    call_command("export_references", "--project", "study", "--layer", "coder_b", "-o", str(path), stdout=io.StringIO())
    coder_b = pd.read_csv(path, encoding="utf-8-sig")

    assert consensus["layer"].tolist() == ["consensus"]
    assert coder_b["layer"].tolist() == ["coder_b"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--project", "nope", "-o", "x.csv"], "No project with slug 'nope'."),
        (["--project", "study", "-o", "x.txt"], "x.txt: the output file must end in .csv or .xlsx."),
        (["--project", "study", "--layer", "outsider", "-o", "x.csv"], "'outsider' is no member of project study"),
    ],
)
def test_export_references_refuses_bad_arguments(tmp_path, project, outsider, arguments, message, monkeypatch):
    monkeypatch.chdir(tmp_path)

    with pytest.raises(CommandError, match=message):
        call_command("export_references", *arguments)

    assert not list(tmp_path.iterdir())


@pytest.fixture
def study(project, admin_user, coder_a):
    nodes = table3.build_codebook(project, admin_user)
    table3.build_policies(project, admin_user)
    table3.code_table3(project, admin_user, coder_a, nodes)
    return nodes


@pytest.mark.django_db
def test_distribution_json_is_a_list_of_rows(project, coder_a, study):
    out = io.StringIO()

    call_command("distribution", "--project", "study", "--format", "json", stdout=out)

    rows = json.loads(out.getvalue())
    by_node = {row["node"]: row for row in rows}
    assert by_node["Supply-based"] == {
        "node": "Supply-based",
        "level": "tree",
        "references": 53,
        "policies": 53,
        "share": 53 / 165,
    }
    assert by_node["Demand-based > Smart Applications"]["share"] == 42 / 60
    assert sum(row["share"] for row in rows if row["level"] == "tree") == pytest.approx(1)
    assert [row["node"] for row in rows][:2] == ["Supply-based", "Supply-based > Infrastructure"]


@pytest.mark.django_db
def test_distribution_by_attribute(project, coder_a, study):
    out = io.StringIO()

    call_command(
        "distribution",
        "--project",
        "study",
        "--layer",
        "coder_a",
        "--by",
        "jurisdiction",
        "--format",
        "json",
        stdout=out,
    )

    rows = json.loads(out.getvalue())
    assert sorted({row["jurisdiction"] for row in rows}) == sorted(table3.JURISDICTIONS)
    beijing = [row for row in rows if row["value"] == "Beijing"]
    trees = [row for row in beijing if row["level"] == "tree"]
    expected = Reference.objects.filter(policy__jurisdiction="Beijing").count()
    assert sum(row["references"] for row in trees) == expected
    assert sum(row["share"] for row in trees) == pytest.approx(1)


@pytest.mark.django_db
def test_distribution_table_and_csv(project, coder_a, study):
    table, csv = io.StringIO(), io.StringIO()

    call_command("distribution", "--project", "study", stdout=table)
    call_command("distribution", "--project", "study", "--format", "csv", stdout=csv)

    lines = table.getvalue().splitlines()
    assert lines[0] == "Layers: All coders"
    assert lines[1].split() == ["Supply-based", "53", "32.1%", "53", "policies"]
    frame = pd.read_csv(io.StringIO(csv.getvalue()))
    assert frame.columns.tolist() == ["node", "references", "policies", "share"]
    assert frame["references"].iloc[0] == 53


@pytest.mark.django_db
def test_distribution_refuses_unknown_attribute_and_layer(project, study):
    with pytest.raises(CommandError, match="'colour' is not a policy attribute"):
        call_command("distribution", "--project", "study", "--by", "colour")
    with pytest.raises(CommandError, match="'nobody' is no member of project study"):
        call_command("distribution", "--project", "study", "--layer", "nobody")
