"""Cross-table invariants the database enforces itself (Django constraints cannot span tables):

- a clause lies within its policy's text: end <= length(text), in code points on both engines;
- a policy's text is never shortened below one of its clauses;
- a reference lies inside its clause, and its clause belongs to its policy;
- a reference's node belongs to the project of its policy;
- a node's parent belongs to the same project.

Each violation aborts the statement as an IntegrityError naming the rule.
"""

from django.db import migrations

CHECKS = {
    # name: (table, events, condition that is a violation, message)
    "clause_within_policy": (
        "coding_clause",
        ("INSERT", "UPDATE"),
        'NEW."end" > (SELECT {len}(p.text) FROM coding_policy p WHERE p.id = NEW.policy_id)',
        "clause end lies past the end of its policy text",
    ),
    "policy_text_covers_clauses": (
        "coding_policy",
        ("UPDATE",),
        'EXISTS (SELECT 1 FROM coding_clause c WHERE c.policy_id = NEW.id AND c."end" > {len}(NEW.text))',
        "policy text would end before one of its clauses",
    ),
    "reference_within_clause": (
        "coding_reference",
        ("INSERT", "UPDATE"),
        "NOT EXISTS (SELECT 1 FROM coding_clause c WHERE c.id = NEW.clause_id AND c.policy_id = NEW.policy_id"
        ' AND c.start <= NEW.start AND NEW."end" <= c."end")',
        "reference does not lie inside its clause of its policy",
    ),
    "reference_node_in_project": (
        "coding_reference",
        ("INSERT", "UPDATE"),
        "(SELECT n.project_id FROM coding_node n WHERE n.id = NEW.node_id)"
        " IS DISTINCT FROM (SELECT p.project_id FROM coding_policy p WHERE p.id = NEW.policy_id)",
        "reference node belongs to another project than its policy",
    ),
    "node_parent_in_project": (
        "coding_node",
        ("INSERT", "UPDATE"),
        "NEW.parent_id IS NOT NULL AND"
        " (SELECT n.project_id FROM coding_node n WHERE n.id = NEW.parent_id) IS DISTINCT FROM NEW.project_id",
        "node parent belongs to another project",
    ),
}


def sqlite_sql() -> tuple[list[str], list[str]]:
    forward, backward = [], []
    for name, (table, events, condition, message) in CHECKS.items():
        condition = condition.format(len="length").replace("IS DISTINCT FROM", "IS NOT")
        for event in events:
            trigger = f"{name}_{event.lower()}"
            forward.append(
                f"CREATE TRIGGER {trigger} BEFORE {event} ON {table} FOR EACH ROW WHEN {condition} "
                f"BEGIN SELECT RAISE(ABORT, '{name}: {message}'); END;"
            )
            backward.append(f"DROP TRIGGER IF EXISTS {trigger};")
    return forward, backward


def postgres_sql() -> tuple[list[str], list[str]]:
    forward, backward = [], []
    for name, (table, events, condition, message) in CHECKS.items():
        condition = condition.format(len="char_length")
        forward.append(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF {condition} THEN RAISE EXCEPTION '{name}: {message}' USING ERRCODE = 'check_violation'; END IF; "
            f"RETURN NEW; END $$;"
        )
        forward.append(
            f"CREATE TRIGGER {name} BEFORE {' OR '.join(events)} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}();"
        )
        backward.append(f"DROP TRIGGER IF EXISTS {name} ON {table};")
        backward.append(f"DROP FUNCTION IF EXISTS {name}();")
    return forward, backward


def apply(apps, schema_editor, *, reverse: bool = False) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        forward, backward = sqlite_sql()
    elif vendor == "postgresql":
        forward, backward = postgres_sql()
    else:
        raise RuntimeError(f"No integrity triggers for database vendor {vendor!r}.")
    for statement in backward if reverse else forward:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("coding", "0001_initial")]

    operations = [
        migrations.RunPython(apply, lambda apps, se: apply(apps, se, reverse=True)),
    ]
