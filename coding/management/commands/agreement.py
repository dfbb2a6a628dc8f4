"""Inter-coder agreement on the command line: the same figures as the agreement page.

python manage.py agreement --project smart-city --coders coder1,coder2 --level both --format table
"""

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from coding import agreement_data
from coding.models import Project


def _cell(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _text_table(records: list[dict]) -> str:
    if not records:
        return "(no rows)"
    columns = list(records[0])
    cells = [[_cell(record[c]) for c in columns] for record in records]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Print inter-coder agreement for a project: per node, overall, per coder pair and per policy."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument(
            "--coders", required=True, help="Usernames, comma-separated; 'consensus' for the consensus layer."
        )
        parser.add_argument("--unit", choices=agreement_data.UNITS, default="clause")
        parser.add_argument("--level", choices=agreement_data.LEVELS, default="sub")
        parser.add_argument("--format", choices=("table", "csv", "json"), default="table", dest="output")
        parser.add_argument(
            "--table",
            choices=("all", *agreement_data.TABLES),
            default="all",
            help="Which table to print (csv prints one table: nodes unless given).",
        )
        parser.add_argument("--policies", default="", help="Policy numbers to consider, e.g. '1-20, 25'.")
        parser.add_argument("--jurisdiction", default="")
        parser.add_argument("--potency-level", default="")

    def handle(self, *args, **options) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"There is no project with slug {options['project']!r}.")
        try:
            selection = agreement_data.parse_selection(
                project,
                coders=options["coders"],
                level=options["level"],
                unit=options["unit"],
                policies=options["policies"],
                jurisdiction=options["jurisdiction"],
                potency_level=options["potency_level"],
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        report = agreement_data.build_report(project, selection)
        output, table = options["output"], options["table"]
        if output == "json":
            data = report.as_dict()
            if table != "all":
                data["levels"] = {level: {table: tables[table]} for level, tables in data["levels"].items()}
            self.stdout.write(json.dumps(data, ensure_ascii=False, indent=2))
        elif output == "csv":
            self.stdout.write(
                agreement_data.records_csv(report.records("nodes" if table == "all" else table)), ending=""
            )
        else:
            coverage = report.coverage
            self.stdout.write(
                f"Compared {coverage.compared} of {coverage.considered} policies ({coverage.clauses} clauses), "
                f"coders {', '.join(layer.key for layer in selection.layers)}, unit {selection.unit}."
            )
            for reason in coverage.reasons:
                self.stdout.write(f"Left out: {reason}.")
            for name in agreement_data.TABLES if table == "all" else (table,):
                self.stdout.write(f"\n{name}\n")
                self.stdout.write(_text_table(report.records(name)))
