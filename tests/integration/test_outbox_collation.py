"""sync_outbox's event_type and routing_key in the "C" collation (migration 013, issue 11: the
writer's cost). The upgrade keeps every pending event, claim and lease, drops and restores the old
NOTIFY trigger whose WHEN clause names event_type, and claims by type and by routing key still
return the same events in id order, in a database of a linguistic locale too."""
import psycopg
import pytest

from docs_table import rule
from test_upgrade import outbox_state

COLS = "attname, attcollation::regcollation::text"


def collations(conn):
    return conn.execute(f"SELECT {COLS} FROM pg_attribute WHERE attrelid = 'sync_outbox'::regclass"
                        " AND attname IN ('event_type', 'routing_key') ORDER BY 1").fetchall()


def indexes(conn):
    return conn.execute("SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index"
                        " WHERE indrelid = 'sync_outbox'::regclass ORDER BY 1").fetchall()


def notify_trigger(conn):
    return conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'sync_outbox'::regclass"
                        " AND tgname = 'sync_outbox_notify'").fetchone()[0]


@pytest.fixture
def en_db(pgdb):
    """pgdb recreated in en_US.UTF-8 when the machine has it (strcoll then compares linguistically)."""
    with psycopg.connect(dbname="postgres", autocommit=True) as c:
        if c.execute("SELECT count(*) FROM pg_collation WHERE collname = 'en_US.utf8'").fetchone()[0]:
            c.execute(f'DROP DATABASE "{pgdb}"')
            c.execute(f"CREATE DATABASE \"{pgdb}\" TEMPLATE template0 LOCALE 'en_US.UTF-8'")
    with psycopg.connect(dbname=pgdb, autocommit=True) as c:
        yield c


def test_upgrade_to_the_c_collation_keeps_every_event_and_claim(make_daemon, en_db):
    db = en_db
    d = make_daemon({"rule.docs": rule()})
    d.cli("init")
    assert collations(db) == [("event_type", '"C"'), ("routing_key", '"C"')]
    shipped = indexes(db)
    assert notify_trigger(db) == 1  # no capture function yet: the outbox's own NOTIFY trigger
    # an install as migration 012 left it: the database's collation, version 12, the old trigger
    db.execute("DROP TRIGGER sync_outbox_notify ON sync_outbox")
    db.execute('ALTER TABLE sync_outbox ALTER COLUMN event_type TYPE text COLLATE "default",'
               ' ALTER COLUMN routing_key TYPE text COLLATE "default"')
    db.execute("CREATE TRIGGER sync_outbox_notify AFTER INSERT ON sync_outbox FOR EACH ROW WHEN"
               " (pg_catalog.pg_notify('sync_outbox_insert', NEW.event_type) IS NULL)"
               " EXECUTE FUNCTION sync_outbox_notify()")
    db.execute("UPDATE sync_outbox_meta SET value = '12' WHERE key = 'schema_version'")
    # pending events of three types (upper and lower case: byte and linguistic orders differ),
    # routing keys on some, several per row, some claimed with their leases
    db.execute("INSERT INTO sync_outbox (event_type, routing_key, rule, source_table, row_key, op, payload)"
               " SELECT (ARRAY['docs', 'Docs', 'zeta'])[1 + i % 3], CASE WHEN i % 2 = 0 THEN (ARRAY['b', 'A', 'a'])[1 + i % 3] END,"
               " 'docs', 'public.docs', jsonb_build_object('id', i % 50), 'upsert', json_build_object('id', i % 50, 'v', i)"
               " FROM generate_series(1, 300) i")
    # (20 claimed; since migration 015 the claim also supersedes, and returns as 'coalesced', the
    # older events of the claimed rows that another type left pending: one rule's rows here)
    got = db.execute("SELECT op FROM sync_outbox_claim('old.1', ARRAY['docs'], NULL, 20, 60000)").fetchall()
    assert sum(op in ("upsert", "delete") for (op,) in got) == 20 and {op for (op,) in got} <= {"upsert", "coalesced"}
    before, claimed = outbox_state(db), claims(db)
    assert "installed or upgraded" in d.cli("init").stdout
    assert collations(db) == [("event_type", '"C"'), ("routing_key", '"C"')]
    assert indexes(db) == shipped
    assert notify_trigger(db) == 1
    assert outbox_state(db) == before
    assert "already up to date" in d.cli("init").stdout
    assert outbox_state(db) == before
    assert claims(db) == claimed and all(claimed)


CLAIMS = ((["Docs"], None), (["zeta", "docs"], None), (["Docs"], "A"), (["docs"], "b"), (["zeta"], "a"))


def claims(db):
    """What a claim by type(s) and routing key returns now, each rolled back."""
    out = []
    for types, routing in CLAIMS:
        with db.transaction():
            out.append(db.execute("SELECT id, op, event_type FROM sync_outbox_claim('new.1', %s, %s, 7, 60000)"
                                  " ORDER BY id", (types, routing)).fetchall())
            raise psycopg.Rollback()
    return out
