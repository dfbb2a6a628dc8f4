"""The project's stop-word list, and ReferenceTally: references per (layer, node, policy), the
summary the dashboards count from.

Its triggers, which keep it equal to a recount of coding_reference, are not installed here:
``coding/tally.py`` installs them (and counts the existing references) after every
``migrate``, like the integrity triggers of ``coding/triggers.py``. On PostgreSQL the unique
constraint becomes covering (INCLUDE reference_count), so dashboards read counts from the
index alone; SQLite has no covering constraints.
"""

import django.db.models.deletion
from django.db import migrations, models

COVERING = (
    "ALTER TABLE coding_referencetally DROP CONSTRAINT referencetally_unique, "
    "ADD CONSTRAINT referencetally_unique UNIQUE (layer, node_id, policy_id){include};"
)


def covering(apps, schema_editor, *, reverse: bool = False) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(COVERING.format(include="" if reverse else " INCLUDE (reference_count)"))


class Migration(migrations.Migration):
    dependencies = [
        ("coding", "0003_refi_guids"),
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="stopwords",
            field=models.JSONField(
                blank=True,
                help_text="Words left out of word frequencies; empty means the default Chinese+English list.",
                null=True,
            ),
        ),
        migrations.CreateModel(
            name="ReferenceTally",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "layer",
                    models.BigIntegerField(
                        help_text="The coder's user id, 0 for the consensus layer, -1 for all coders."
                    ),
                ),
                ("reference_count", models.PositiveIntegerField()),
                (
                    "node",
                    models.ForeignKey(
                        db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="coding.node"
                    ),
                ),
                (
                    "policy",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="coding.policy"
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("layer", "node", "policy"), name="referencetally_unique")
                ],
            },
        ),
        migrations.RunPython(covering, lambda apps, se: covering(apps, se, reverse=True)),
    ]
