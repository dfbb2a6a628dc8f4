"""Cross-table invariants the database enforces itself (Django constraints cannot span tables):

- a clause lies within its policy's text: end <= length(text), in code points on both engines;
- a policy's text is never shortened below one of its clauses;
- a reference lies inside its clause, and its clause belongs to its policy;
- a reference's node belongs to the project of its policy;
- a node's parent belongs to the same project.

Each violation aborts the statement as an IntegrityError naming the rule.

Why they are (re)installed around every `migrate` rather than once in a migration: SQLite
alters a table by rebuilding it (create new, copy, drop old, rename), which drops the
table's own triggers and trips over triggers on other tables that name it. So the triggers
are removed before migrations run and installed again afterwards (``coding.apps``), on
both engines alike so that one code path is exercised everywhere.
"""

from __future__ import annotations

CHECKS = {
    # name: (table, events, condition that is a violation, message)
    "clause_within_policy": (
        "coding_clause",
        ("INSERT", "UPDATE"),
        'NEW."end" > (SELECT p.text_length FROM coding_policy p WHERE p.id = NEW.policy_id)',
        "clause end lies past the end of its policy text",
    ),
    "policy_text_covers_clauses": (
        "coding_policy",
        ("UPDATE OF text",),
        '(SELECT max(c."end") FROM coding_clause c WHERE c.policy_id = NEW.id) > {len}(NEW.text)',
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
TABLES = {"coding_clause", "coding_policy", "coding_reference", "coding_node"}


def _sqlite_sql() -> tuple[list[str], list[str]]:
    create, drop = [], []
    for name, (table, events, condition, message) in CHECKS.items():
        condition = condition.format(len="length").replace("IS DISTINCT FROM", "IS NOT")
        for event in events:
            trigger = f"{name}_{event.split()[0].lower()}"
            create.append(
                f"CREATE TRIGGER {trigger} BEFORE {event} ON {table} FOR EACH ROW WHEN {condition} "
                f"BEGIN SELECT RAISE(ABORT, '{name}: {message}'); END;"
            )
            drop.append(f"DROP TRIGGER IF EXISTS {trigger};")
    return create, drop


def _postgres_sql() -> tuple[list[str], list[str]]:
    create, drop = [], []
    for name, (table, events, condition, message) in CHECKS.items():
        condition = condition.format(len="char_length")
        create.append(
            f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF {condition} THEN RAISE EXCEPTION '{name}: {message}' USING ERRCODE = 'check_violation'; END IF; "
            f"RETURN NEW; END $$;"
        )
        create.append(
            f"CREATE TRIGGER {name} BEFORE {' OR '.join(events)} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}();"
        )
        drop.append(f"DROP TRIGGER IF EXISTS {name} ON {table};")
    return create, drop


def _statements(vendor: str) -> tuple[list[str], list[str]]:
    if vendor == "sqlite":
        return _sqlite_sql()
    if vendor == "postgresql":
        return _postgres_sql()
    raise RuntimeError(f"No integrity triggers for database vendor {vendor!r}.")


def _tables_exist(connection) -> bool:
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor)) >= TABLES


def remove(connection) -> None:
    """Drop the triggers (if the tables exist)."""
    if not _tables_exist(connection):
        return
    _, drop = _statements(connection.vendor)
    with connection.cursor() as cursor:
        for statement in drop:
            cursor.execute(statement)


def install(connection) -> None:
    """(Re)create the triggers; a no-op until the tables exist."""
    if not _tables_exist(connection):
        return
    remove(connection)
    create, _ = _statements(connection.vendor)
    with connection.cursor() as cursor:
        for statement in create:
            cursor.execute(statement)
