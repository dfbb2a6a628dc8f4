"""Print a project's distribution of references per tree node and sub-node."""

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from coding import stats
from coding.models import Project


class Command(BaseCommand):
    help = (
        "The distribution of references per tree node and sub-node (counts, policies coded, shares), "
        "for some layers summed, optionally per value of a policy attribute."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument(
            "--layer",
            action="append",
            default=[],
            help="A coder's username, 'coders' (every coder, the default) or 'consensus'; repeat to sum several.",
        )
        parser.add_argument(
            "--by", help="A policy attribute: jurisdiction, year, potency_level, department or attr:KEY."
        )
        parser.add_argument("--format", choices=["table", "csv", "json"], default="table")

    def handle(self, *args, project: str, layer: list[str], by: str | None, format: str, **options) -> None:
        found = Project.objects.filter(slug=project).first()
        if found is None:
            raise CommandError(f"No project with slug {project!r}.")
        try:
            if by:
                stats.check_attribute(by)
            selection = stats.layers_by_name(found, layer)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        rows = stats.distribution_rows(found, selection, by=by)
        if format == "csv":
            self.stdout.write(rows.drop(columns=["level"]).to_csv(index=False, lineterminator="\n"), ending="")
        elif format == "json":
            self.stdout.write(json.dumps(self._records(rows, by), ensure_ascii=False, indent=2))
        else:
            self._table(rows, by, selection.label)

    def _records(self, rows, by: str | None) -> list[dict]:
        records = []
        for row in rows.to_dict("records"):
            record = {
                "node": row["node"],
                "level": "tree" if row["level"] == 1 else "sub",
                "references": int(row["references"]),
                "policies": int(row["policies"]),
                "share": None if row["share"] != row["share"] else row["share"],  # NaN: nothing to share
            }
            if by:
                # The attribute's value under its own name ("jurisdiction", "year", a custom key) and as "value".
                name = by.removeprefix("attr:")
                record = {name: row["value"], "value": row["value"], **record}
            records.append(record)
        return records

    def _table(self, rows, by: str | None, label: str) -> None:
        self.stdout.write(f"Layers: {label}")
        width = max([len(n) for n in rows["node"]] + [4])
        current = object()
        for row in rows.to_dict("records"):
            if by and row["value"] != current:
                current = row["value"]
                self.stdout.write(f"\n{stats.attribute_label(by)}: {current}")
            share = "—" if row["share"] != row["share"] else f"{row['share'] * 100:.1f}%"
            self.stdout.write(
                f"{row['node']:<{width}}  {row['references']:>8}  {share:>6}  {row['policies']:>6} policies"
            )
