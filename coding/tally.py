"""The triggers that keep ``ReferenceTally`` equal to a recount of ``Reference``.

A reference counts in its own layer (its coder's id, or 0 for the consensus layer) and, when
a coder's, also in layer -1 (all coders together). Every insert, update and delete of a
reference adjusts the tally in the same transaction, whatever writes it (services, bulk
imports, raw SQL, the admin): triggers rather than service code, for the reason
``coding/triggers.py`` gives for the integrity checks. A count that falls to zero deletes its
row, so every row is one policy coded at one node in one layer. Decrement first, then delete
at zero: with the opposite order two concurrent deletes on PostgreSQL could both miss the
delete and leave a zero row behind.

Like the integrity triggers they are removed before and installed after every ``migrate``
(``coding/apps.py``): SQLite rebuilds tables to alter them, which would drop these triggers
silently. References written while they are missing (by a data migration) are counted when
they come back: ``install`` recounts the tally whenever it finds them missing.
"""

from __future__ import annotations

TABLE = "coding_referencetally"
TABLES = {"coding_reference", TABLE}
LAYER = "CASE WHEN {row}.consensus THEN 0 ELSE {row}.coder_id END"
# The second layer of a row: -1 (all coders) for a coder's reference; the consensus has none,
# so it repeats layer 0, which ``IN`` counts once.
ALL_CODERS = "CASE WHEN {row}.consensus THEN 0 ELSE -1 END"
_UPSERT = f"ON CONFLICT (layer, node_id, policy_id) DO UPDATE SET reference_count = {TABLE}.reference_count + 1;"
INCREMENT = (
    f"INSERT INTO {TABLE} (layer, node_id, policy_id, reference_count) "
    f"VALUES ({LAYER.format(row='NEW')}, NEW.node_id, NEW.policy_id, 1) {_UPSERT} "
    f"INSERT INTO {TABLE} (layer, node_id, policy_id, reference_count) "
    f"SELECT -1, NEW.node_id, NEW.policy_id, 1 WHERE NOT NEW.consensus {_UPSERT}"
)
_OLD_KEY = (
    "node_id = OLD.node_id AND policy_id = OLD.policy_id "
    f"AND layer IN ({LAYER.format(row='OLD')}, {ALL_CODERS.format(row='OLD')})"
)
DECREMENT = (
    f"UPDATE {TABLE} SET reference_count = reference_count - 1 WHERE {_OLD_KEY}; "
    f"DELETE FROM {TABLE} WHERE {_OLD_KEY} AND reference_count <= 0;"
)
# Django's save() writes every column, so the UPDATE trigger fires only when the key moved.
KEY_CHANGED = (
    "OLD.node_id {ne} NEW.node_id OR OLD.policy_id {ne} NEW.policy_id"
    " OR OLD.coder_id {ne} NEW.coder_id OR OLD.consensus {ne} NEW.consensus"
)
RECOUNT = (
    f"INSERT INTO {TABLE} (layer, node_id, policy_id, reference_count) "
    f"SELECT {LAYER.format(row='r')}, r.node_id, r.policy_id, COUNT(*) FROM coding_reference r "
    f"GROUP BY {LAYER.format(row='r')}, r.node_id, r.policy_id "
    "UNION ALL "
    "SELECT -1, r.node_id, r.policy_id, COUNT(*) FROM coding_reference r WHERE NOT r.consensus "
    "GROUP BY r.node_id, r.policy_id"
)
SQLITE_TRIGGERS = ("reference_tally_insert", "reference_tally_delete", "reference_tally_update")
POSTGRES_TRIGGERS = ("reference_tally_insert_delete", "reference_tally_update")


def _statements(vendor: str) -> tuple[list[str], list[str]]:
    if vendor == "sqlite":
        changed = KEY_CHANGED.format(ne="IS NOT")
        create = [
            f"CREATE TRIGGER reference_tally_insert AFTER INSERT ON coding_reference BEGIN {INCREMENT} END;",
            f"CREATE TRIGGER reference_tally_delete AFTER DELETE ON coding_reference BEGIN {DECREMENT} END;",
            "CREATE TRIGGER reference_tally_update AFTER UPDATE ON coding_reference "
            f"WHEN {changed} BEGIN {DECREMENT} {INCREMENT} END;",
        ]
        return create, [f"DROP TRIGGER IF EXISTS {name};" for name in SQLITE_TRIGGERS]
    if vendor == "postgresql":
        changed = KEY_CHANGED.format(ne="IS DISTINCT FROM")
        create = [
            "CREATE OR REPLACE FUNCTION reference_tally() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF TG_OP IN ('UPDATE', 'DELETE') THEN {DECREMENT} END IF; "
            f"IF TG_OP IN ('UPDATE', 'INSERT') THEN {INCREMENT} END IF; "
            "RETURN NULL; END $$;",
            "CREATE TRIGGER reference_tally_insert_delete AFTER INSERT OR DELETE ON coding_reference "
            "FOR EACH ROW EXECUTE FUNCTION reference_tally();",
            f"CREATE TRIGGER reference_tally_update AFTER UPDATE ON coding_reference FOR EACH ROW WHEN ({changed}) "
            "EXECUTE FUNCTION reference_tally();",
        ]
        return create, [f"DROP TRIGGER IF EXISTS {name} ON coding_reference;" for name in POSTGRES_TRIGGERS]
    raise RuntimeError(f"No reference tally triggers for database vendor {vendor!r}.")


def _tables_exist(connection) -> bool:
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor)) >= TABLES


def present(connection) -> bool:
    """Whether every tally trigger exists."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            expected = SQLITE_TRIGGERS
        else:
            cursor.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
            expected = POSTGRES_TRIGGERS
        return set(expected) <= {row[0] for row in cursor.fetchall()}


def recount(connection) -> None:
    """Rebuild the whole tally from the references (two statements, in one transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE}")
        cursor.execute(RECOUNT)


def remove(connection) -> None:
    """Drop the triggers (if the tables exist)."""
    if not _tables_exist(connection):
        return
    _, drop = _statements(connection.vendor)
    with connection.cursor() as cursor:
        for statement in drop:
            cursor.execute(statement)


def install(connection) -> None:
    """(Re)create the triggers, recounting the tally first when they were missing; a no-op
    until the tables exist."""
    from django.db import transaction

    if not _tables_exist(connection):
        return
    with transaction.atomic(using=connection.alias):
        was_present = present(connection)
        remove(connection)
        if not was_present:
            recount(connection)
        create, _ = _statements(connection.vendor)
        with connection.cursor() as cursor:
            for statement in create:
                cursor.execute(statement)
