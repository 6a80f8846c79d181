"""What reaches Qdrant never depends on the session that wrote the row (issue 8).

- test_payload_mapping[*]: one test per row of README's "Payload mapping" table: the value a
  column of that type lands with in the test server's point payload, written by a session with
  every output setting set to something other than pg2qdrant's pins.
- test_writer_session_matrix: the same rows written by many writer sessions (TimeZone,
  extra_float_digits, DateStyle, IntervalStyle, bytea_output, a role with no privilege on the
  outbox schema, all at once) and by `apply` and `backfill` under a hostile PGTZ/PGOPTIONS: Qdrant's
  points (payload and vector) are identical every time; `reconcile` exits 0 under other
  PGTZ/PGOPTIONS/PGCLIENTENCODING values and a conninfo with its own `options`.
- test_change_beyond_sixth_digit_enqueues: with extra_float_digits = 0 a vector change in the
  7th significant digit (and a double change in the 16th) still enqueues an event and lands.
- test_odd_identifiers_sync: key, vector, payload and text columns named with quotes,
  backslashes, unicode and spaces sync (the daemon used to treat every such row as vectorless).
- test_apply_after_upgrade_rewrites_session_dependent_points: an install from before the pins
  gets its points rewritten by the next `apply`.
"""
import json
import struct
import uuid

import psycopg
import pytest

from conftest import Daemon, need_postgres, ungate, wait_until
from openai_stub import OpenAIStub, vector_for

OUTBOX = "p2q_outbox"  # the outbox lives in its own schema: writers get no privilege on it

# Every setting that changes text output, set to a value other than pg2qdrant's pins.
HOSTILE = {"TimeZone": "America/Los_Angeles", "extra_float_digits": "0", "DateStyle": "SQL, DMY",
           "IntervalStyle": "postgres_verbose", "bytea_output": "escape", "lc_monetary": "C.utf8"}
HOSTILE_PGOPTIONS = ("-c TimeZone=Pacific/Chatham -c extra_float_digits=-15 -c DateStyle=German "
                     "-c IntervalStyle=sql_standard -c bytea_output=escape -c search_path=public")

# (column, type, SQL value, payload value in Qdrant) — README "Payload mapping", row by row.
CASES = [
    ("bigint_beyond_2_53", "bigint", "9007199254740993", 9007199254740993),
    ("bigint_max", "bigint", "9223372036854775807", 9223372036854775807),
    ("numeric_exact", "numeric", "1.50", 1.5),
    ("numeric_beyond_double", "numeric", "12345678901234567890.123456789", "12345678901234567890.123456789"),
    ("numeric_beyond_int64", "numeric", "123456789012345678901234567890", "123456789012345678901234567890"),
    ("double", "double precision", "0.1::float8 + 0.2", 0.30000000000000004),
    ("real", "real", "0.1", 0.1),
    ("double_nan", "double precision", "'NaN'", "NaN"),
    ("double_minus_infinity", "double precision", "'-Infinity'", "-Infinity"),
    ("numeric_infinity", "numeric", "'Infinity'", "Infinity"),
    ("timestamptz", "timestamptz", "'2025-01-01 04:00:00.5-08'", "2025-01-01T12:00:00.5+00:00"),
    ("timestamptz_infinity", "timestamptz", "'infinity'", "infinity"),
    ("timestamp", "timestamp", "'2025-01-01 04:00:00'", "2025-01-01T04:00:00"),
    ("date", "date", "'2025-01-31'", "2025-01-31"),
    ("interval", "interval", "'1 year 2 months 3 days 04:05:06.5'", "P1Y2M3DT4H5M6.5S"),
    ("tstzrange", "tstzrange", "tstzrange('2025-01-01 04:00-08', '2025-01-02 04:00-08')",
     '["2025-01-01 12:00:00+00","2025-01-02 12:00:00+00")'),
    ("jsonb", "jsonb", """'{"a": [1, 2.5, null], "big": 12345678901234567890.5}'""",
     {"a": [1, 2.5, None], "big": "12345678901234567890.5"}),
    ("text_array", "text[]", "ARRAY['a', 'b \"c\"']", ["a", 'b "c"']),
    ("timestamptz_array", "timestamptz[]", "ARRAY['2025-01-01 04:00-08'::timestamptz, NULL]",
     ["2025-01-01T12:00:00+00:00", None]),
    ("bytea", "bytea", "'\\x00ff41'::bytea", "\\x00ff41"),
    ("enum", "mood", "'happy'", "happy"),
    ("domain", "posint", "5", 5),
    ("money", "money", "12.5", "$12.50"),
    ("boolean", "boolean", "true", True),
    ("regclass", "regclass", "'public.types'", "public.types"),
    ("sql_null", "text", "NULL", None),
]


def writer(dbname, settings=None, user=None):
    conn = psycopg.connect(dbname=dbname, autocommit=True, **({"user": user} if user else {}))
    for k, v in (settings or {}).items():
        conn.execute(f"SELECT set_config('{k}', '{v}', false)")
    return conn


def outbox_empty(conn):
    return conn.execute(f"SELECT count(*) FROM {OUTBOX}.sync_outbox").fetchone()[0] == 0


def dead(conn):
    return conn.execute(f"SELECT count(*) FROM {OUTBOX}.sync_outbox_dead").fetchone()[0]


def points(qdrant, collection):
    r = qdrant.points(collection)
    return r["points"] if isinstance(r, dict) else r


def synced(db, qdrant, collection, n):
    """Outbox drained and exactly n points; returns {id: point} (canonical JSON compared)."""
    def ok():
        if not outbox_empty(db):
            return None
        pts = points(qdrant, collection)
        return [{p["id"]: p for p in pts}] if len(pts) == n else None  # a list: {} is falsy
    got = wait_until(ok, timeout=30, what=f"{n} points in {collection} and an empty outbox")
    assert dead(db) == 0
    return got[0]


# ---------- payload mapping: one test per README row ----------

@pytest.fixture(scope="module")
def mapped(qdrant_session, tmp_path_factory):
    """Sync one row holding every CASES column, written by a HOSTILE session; the payload."""
    need_postgres()
    qdrant_session.reset()
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(dbname="postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    d = None
    try:
        with psycopg.connect(dbname=name, autocommit=True) as db:
            db.execute("CREATE TYPE mood AS ENUM ('sad', 'happy')")
            db.execute("CREATE DOMAIN posint AS integer CHECK (VALUE > 0)")
            cols = ", ".join(f"c_{c} {t}" for c, t, _, _ in CASES)
            db.execute(f"CREATE TABLE types (id int PRIMARY KEY, emb real[], {cols})")
            d = Daemon(tmp_path_factory.mktemp("mapping"), name, qdrant_session.url, {
                "postgres": {"schema": OUTBOX},
                "rule.types": {"table": "public.types", "key": "id", "vector_column": "emb",
                               "dimension": "2", "distance": "Dot", "collection": "types"}})
            d.cli("init")
            d.cli("apply")
            with writer(name, HOSTILE) as w:
                w.execute(f"INSERT INTO types (id, emb, {', '.join('c_' + c for c, _, _, _ in CASES)}) "
                          f"VALUES (1, '{{0.5,1}}', {', '.join(v for _, _, v, _ in CASES)})")
            d.start()
            pts = synced(db, qdrant_session, "types", 1)
            payload = pts[1]["payload"]
            rec = d.cli("reconcile", check=False, env=dict(d.env, PGTZ="Asia/Kolkata", PGOPTIONS=HOSTILE_PGOPTIONS))
            return payload, rec
    finally:
        if d:
            d.close()
        with psycopg.connect(dbname="postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("col,typ,sql,want", CASES, ids=[c[0] for c in CASES])
def test_payload_mapping(mapped, col, typ, sql, want):
    payload, _ = mapped
    assert f"c_{col}" in payload, f"c_{col} missing from {sorted(payload)}"
    got = payload[f"c_{col}"]
    assert got == want and type(got) is type(want), f"{typ} {sql}: got {got!r}, want {want!r}"


def test_payload_mapping_reconciles(mapped):
    _, rec = mapped
    assert rec.returncode == 0, rec.stdout + rec.stderr


# ---------- the session matrix ----------

MATRIX_COLS = ("id int PRIMARY KEY, emb real[], score double precision, ratio real, at timestamptz, "
               "day date, span interval, raw bytea, price money, amount numeric, tags text[], "
               "meta jsonb, stamps timestamptz[]")
MATRIX_ROWS = [
    "(1, ARRAY[0.12345679, -1.2345679e-20, 3.4028235e38, 1.1754944e-38, 0.1, 0.33333334, -7.654321, 1]::real[], "
    "0.1::float8 + 0.2, 0.1, '2025-01-01 04:00:00.123456-08', '2025-02-28', '1 year 2 months 3 days 04:05:06.5', "
    "'\\x00ff41'::bytea, 12.5, 12345678901234567890.123456789, ARRAY['a', 'b,c'], "
    "'{\"x\": 1.0000000000000002, \"y\": [\"2025-01-01\"]}', ARRAY['2025-06-30 23:59:59.999999+02'::timestamptz])",
    "(2, ARRAY[1, 2, 3, 4, 5, 6, 7, 8]::real[], 1e300, 3.4028235e38, '1999-12-31 23:00:00-01', '0044-03-15 BC', "
    "'-1 days +02:00:00', ''::bytea, -1234567.5, 9007199254740993, '{}', '[]', '{}')",
    "(3, ARRAY[0, -0, 1e-7, 2, 3, 4, 5, 6]::real[], 'NaN', '-Infinity', 'infinity', 'infinity', "
    "'0 seconds', '\\x'::bytea, 0, 'NaN', NULL, NULL, NULL)",
]
N = len(MATRIX_ROWS)

# (label, settings of the writer session, role)
SESSIONS = [
    ("default", {}, None),
    ("tz_los_angeles", {"TimeZone": "America/Los_Angeles"}, None),
    ("tz_kolkata", {"TimeZone": "Asia/Kolkata"}, None),
    ("tz_chatham", {"TimeZone": "Pacific/Chatham"}, None),
    ("float_digits_0", {"extra_float_digits": "0"}, None),
    ("float_digits_1", {"extra_float_digits": "1"}, None),
    ("float_digits_3", {"extra_float_digits": "3"}, None),
    ("float_digits_minus_15", {"extra_float_digits": "-15"}, None),
    ("datestyle_sql_dmy", {"DateStyle": "SQL, DMY"}, None),
    ("datestyle_german", {"DateStyle": "German"}, None),
    ("intervalstyle_verbose", {"IntervalStyle": "postgres_verbose"}, None),
    ("intervalstyle_sql_standard", {"IntervalStyle": "sql_standard"}, None),
    ("bytea_escape", {"bytea_output": "escape"}, None),
    ("unprivileged_role", {}, "role"),
    ("everything_at_once", HOSTILE, "role"),
]


@pytest.fixture
def writer_role(pgdb):
    """A login role with rights on the source table only: none on the outbox schema."""
    role = "w_" + uuid.uuid4().hex[:10]
    with psycopg.connect(dbname=pgdb, autocommit=True) as c:
        c.execute(f"CREATE ROLE {role} LOGIN")
    yield role
    with psycopg.connect(dbname=pgdb, autocommit=True) as c:
        c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
        c.execute(f"DROP OWNED BY {role}")
        c.execute(f"DROP ROLE {role}")


def canonical(pts):
    return {i: json.dumps({"payload": p["payload"], "vector": p["vector"]}, sort_keys=True)
            for i, p in pts.items()}


def test_writer_session_matrix(make_daemon, db, pgdb, qdrant, writer_role, tmp_path):
    db.execute(f"CREATE TABLE docs ({MATRIX_COLS})")
    db.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON docs TO {writer_role}")
    db.execute(f"INSERT INTO docs VALUES {', '.join(MATRIX_ROWS)}")
    d = make_daemon({"postgres": {"schema": OUTBOX},
                     "rule.docs": {"table": "public.docs", "key": "id", "vector_column": "emb",
                                   "dimension": "8", "distance": "Dot", "collection": "docs"}})
    hostile_env = dict(d.env, PGTZ="Asia/Kolkata", PGOPTIONS=HOSTILE_PGOPTIONS, PGDATESTYLE="Postgres, DMY")
    d.cli("init", env=hostile_env)
    d.cli("apply", env=hostile_env)  # the existing rows: apply's own session builds the snapshots
    d.env.update(PGTZ="Pacific/Chatham", PGOPTIONS=HOSTILE_PGOPTIONS)  # the daemon's sessions too
    d.start()
    reference = canonical(synced(db, qdrant, "docs", N))
    ref_point = json.loads(reference[1])
    # pinned output, not the default: UTC, all float digits, ISO 8601 interval, hex bytea
    assert ref_point["payload"]["at"] == "2025-01-01T12:00:00.123456+00:00"
    assert ref_point["payload"]["score"] == 0.30000000000000004
    assert ref_point["payload"]["span"] == "P1Y2M3DT4H5M6.5S"
    assert ref_point["payload"]["raw"] == "\\x00ff41"
    assert ref_point["vector"][0] == struct.unpack("f", struct.pack("f", 0.12345679))[0]
    differing = {}
    for label, settings, role in SESSIONS:
        db.execute("DELETE FROM docs")
        synced(db, qdrant, "docs", 0)
        with writer(pgdb, settings, writer_role if role else None) as w:
            if role:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    w.execute(f"SELECT count(*) FROM {OUTBOX}.sync_outbox")
            w.execute(f"INSERT INTO docs VALUES {', '.join(MATRIX_ROWS)}")
        got = canonical(synced(db, qdrant, "docs", N))
        if got != reference:
            differing[label] = {i: (reference.get(i), got.get(i)) for i in got if got.get(i) != reference.get(i)}
    # `backfill` builds its snapshots in its own session: hostile PGTZ/PGOPTIONS change nothing
    qdrant.delete("docs", ids=list(range(1, N + 1)))
    synced(db, qdrant, "docs", 0)
    d.cli("backfill", "docs", env=hostile_env)
    got = canonical(synced(db, qdrant, "docs", N))
    if got != reference:
        differing["backfill"] = {i: (reference.get(i), got.get(i)) for i in got if got.get(i) != reference.get(i)}
    assert differing == {}
    # reconcile agrees with itself whatever the reading session says
    alt = tmp_path / "alt"
    alt.mkdir()
    opt = Daemon(alt, pgdb, qdrant.url, {
        "postgres": {"schema": OUTBOX, "conninfo": "options='-c TimeZone=Asia/Tokyo -c extra_float_digits=0'"},
        "rule.docs": {"table": "public.docs", "key": "id", "vector_column": "emb",
                      "dimension": "8", "distance": "Dot", "collection": "docs"}})
    for runner, env in [(d, dict(d.env, PGTZ="Asia/Kolkata")),
                        (d, dict(d.env, PGTZ="America/St_Johns", PGOPTIONS=HOSTILE_PGOPTIONS)),
                        (d, dict(d.env, PGOPTIONS="-c IntervalStyle=postgres -c DateStyle=SQL,MDY",
                                 PGCLIENTENCODING="LATIN1", PGDATESTYLE="German")),
                        (opt, dict(opt.env, PGTZ="Australia/Eucla"))]:
        r = runner.cli("reconcile", check=False, env=env)
        assert r.returncode == 0, f"PGTZ={env.get('PGTZ')} PGOPTIONS={env.get('PGOPTIONS')}:\n{r.stdout}{r.stderr}"


# ---------- float changes hidden by extra_float_digits = 0 ----------

def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def test_change_beyond_sixth_digit_enqueues(make_daemon, db, pgdb, qdrant):
    db.execute("CREATE TABLE docs (id int PRIMARY KEY, emb real[], score double precision)")
    d = make_daemon({"postgres": {"schema": OUTBOX},
                     "rule.docs": {"table": "public.docs", "key": "id", "vector_column": "emb",
                                   "dimension": "2", "distance": "Dot", "collection": "docs"}})
    d.cli("init")
    d.cli("apply")
    count = f"SELECT count(*) FROM {OUTBOX}.sync_outbox"
    with writer(pgdb, {"extra_float_digits": "0"}) as w:
        # all three values print as 0.123457 / 0.3 in this session
        assert w.execute("SELECT '{0.12345678,1}'::real[]::text, '{0.12345679,1}'::real[]::text, "
                         "(0.1::float8 + 0.2)::text").fetchone() == ("{0.123457,1}", "{0.123457,1}", "0.3")
        w.execute("INSERT INTO docs VALUES (1, '{0.12345678,1}', 0.1::float8 + 0.2)")
        assert db.execute(count).fetchone()[0] == 1
        w.execute("UPDATE docs SET emb = '{0.12345679,1}' WHERE id = 1")  # 8th significant digit
        assert db.execute(count).fetchone()[0] == 2
        w.execute("UPDATE docs SET score = 0.3 WHERE id = 1")  # 17th significant digit
        assert db.execute(count).fetchone()[0] == 3
        w.execute("UPDATE docs SET score = 0.3 WHERE id = 1")  # no change: no event
        assert db.execute(count).fetchone()[0] == 3
    d.start()
    p = synced(db, qdrant, "docs", 1)[1]
    assert p["vector"] == [f32(0.12345679), 1.0]
    assert p["vector"][0] != f32(0.12345678)
    assert p["payload"]["score"] == 0.3


# ---------- identifiers with quotes, backslashes, unicode, spaces ----------

def test_odd_identifiers_sync(make_daemon, db, pgdb, qdrant, tmp_path):
    db.execute('CREATE TABLE odd ("k""ey" int PRIMARY KEY, "em""b\\" real[], "tí tle" text, "a\\b" text, '
               '"bo""dy\\" text, "not kept" text)')
    db.execute('INSERT INTO odd VALUES (1, \'{0.5,1,2}\', \'T1\', \'x\', \'B1\', \'n\'), '
               '(2, \'{3,4,5}\', \'T2\', NULL, \'B2\', \'n\')')
    stub = OpenAIStub(dim=3, api_key="sk-test")
    try:
        d = make_daemon({
            "postgres": {"schema": OUTBOX},
            "embedder.oa": {"type": "openai", "url": stub.url, "model": "m", "api_key_env": "P2Q_TEST_OPENAI_KEY",
                            "dimensions": "3"},
            "rule.odd": {"table": "public.odd", "key": 'k"ey', "vector_column": 'em"b\\',
                         "columns": 'k"ey, tí tle, a\\b', "dimension": "3", "distance": "Dot", "collection": "odd"},
            "rule.oddtext": {"table": "public.odd", "key": 'k"ey', "columns": 'tí tle',
                             "text": 'tí tle, bo"dy\\', "embedder": "oa", "distance": "Dot",
                             "collection": "oddtext"}})
        d.env["P2Q_TEST_OPENAI_KEY"] = "sk-test"
        d.cli("init")
        d.cli("apply")
        d.start()
        pts = synced(db, qdrant, "odd", 2)
        txt = synced(db, qdrant, "oddtext", 2)
        assert pts[1]["vector"] == [0.5, 1.0, 2.0] and pts[2]["vector"] == [3.0, 4.0, 5.0]
        for p in pts.values():
            p["payload"].pop("_hash")
        assert pts[1]["payload"] == {'k"ey': 1, "tí tle": "T1", "a\\b": "x"}
        assert pts[2]["payload"] == {'k"ey': 2, "tí tle": "T2", "a\\b": None}
        for i in (1, 2):
            assert txt[i]["vector"] == [f32(x) for x in vector_for(f"T{i}\nB{i}", 3)]
            assert txt[i]["payload"]["tí tle"] == f"T{i}"
        # an update of the oddly named vector column moves the point, a NULL one removes it
        db.execute('UPDATE odd SET "em""b\\" = \'{7,8,9}\' WHERE "k""ey" = 1')
        db.execute('UPDATE odd SET "em""b\\" = NULL WHERE "k""ey" = 2')
        pts = synced(db, qdrant, "odd", 1)
        assert pts[1]["vector"] == [7.0, 8.0, 9.0]
        r = d.cli("reconcile", check=False)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        stub.close()


# ---------- upgrading from triggers without pinned settings ----------

def test_apply_after_upgrade_rewrites_session_dependent_points(make_daemon, db, pgdb, qdrant):
    """An install from before the pins (trigger function with search_path only, its definition
    recorded without the SET clauses) has points in the writer's zone; the next `apply` sees the
    changed definition, reinstalls the trigger and re-enqueues the rows: the points are fixed."""
    db.execute("CREATE TABLE docs (id int PRIMARY KEY, emb real[], at timestamptz, span interval)")
    d = make_daemon({"postgres": {"schema": OUTBOX},
                     "rule.docs": {"table": "public.docs", "key": "id", "vector_column": "emb",
                                   "dimension": "2", "distance": "Dot", "collection": "docs"}})
    d.cli("init")
    d.cli("apply")
    fn = f"{OUTBOX}.p2q_capture_docs()"
    ungate(db, OUTBOX)  # that release had one trigger function, not the gate and the pinned one
    db.execute(f"ALTER FUNCTION {fn} RESET ALL")
    db.execute(f"ALTER FUNCTION {fn} SET search_path = pg_catalog, pg_temp")
    # that release captured INSERTs and DELETEs with the row trigger (no statement-level triggers)
    db.execute("DROP TRIGGER p2q_docs_insert ON docs")
    db.execute("DROP TRIGGER p2q_docs_delete ON docs")
    db.execute("DROP TRIGGER p2q_docs ON docs")
    db.execute(f"CREATE TRIGGER p2q_docs AFTER INSERT OR UPDATE OR DELETE ON docs FOR EACH ROW EXECUTE FUNCTION {fn}")
    # recorded as that release did: without the SET clauses and without an events fingerprint
    db.execute(f"UPDATE {OUTBOX}.sync_outbox_rule SET definition = regexp_replace("
               f"regexp_replace(definition, ' SET TimeZone = [^$]* AS \\$p2q\\$', ' AS $p2q$', 'g'),"
               f" '-- events fingerprint [0-9a-f]+\\n', '')")
    recorded = db.execute(f"SELECT definition FROM {OUTBOX}.sync_outbox_rule").fetchone()[0]
    assert "TimeZone" not in recorded and "events fingerprint" not in recorded
    with writer(pgdb, {"TimeZone": "America/Los_Angeles", "IntervalStyle": "postgres"}) as w:
        w.execute("INSERT INTO docs VALUES (1, '{1,2}', '2025-01-01 12:00Z', '1 day 2 hours')")
    d.start()
    old = synced(db, qdrant, "docs", 1)[1]["payload"]
    assert (old["at"], old["span"]) == ("2025-01-01T04:00:00-08:00", "1 day 02:00:00")  # the old behaviour
    assert d.cli("reconcile", check=False).returncode == 3  # stale under the pinned settings
    assert "1 existing row(s) enqueued" in d.cli("apply").stdout
    wait_until(lambda: synced(db, qdrant, "docs", 1)[1]["payload"]["at"] == "2025-01-01T12:00:00+00:00",
               what="the point rewritten by apply")
    p = synced(db, qdrant, "docs", 1)[1]["payload"]
    assert p["span"] == "P1DT2H"
    assert d.cli("reconcile", check=False).returncode == 0


def test_apply_after_a_trigger_code_only_upgrade_enqueues_nothing(make_daemon, db, qdrant):
    """An upgrade that changes only the trigger's code (the events it writes stay the same: same
    events fingerprint) gets its trigger re-installed by the next `apply` without re-enqueueing
    the table; a changed rule is reloaded. (A build without fingerprints and other SQL reloads:
    test_apply_after_upgrade_rewrites_session_dependent_points.)"""
    db.execute("CREATE TABLE docs (id int PRIMARY KEY, emb real[])")
    db.execute("INSERT INTO docs SELECT g, '{1,2}' FROM generate_series(1, 50) g")
    d = make_daemon({"postgres": {"schema": OUTBOX},
                     "rule.docs": {"table": "public.docs", "key": "id", "vector_column": "emb",
                                   "dimension": "2", "distance": "Dot", "collection": "docs"}})
    d.cli("init")
    assert "50 existing row(s) enqueued" in d.cli("apply").stdout
    db.execute(f"DELETE FROM {OUTBOX}.sync_outbox")
    fn = f"{OUTBOX}.p2q_capture_docs()"
    # an older release's trigger code: different SQL recorded and installed, same fingerprint
    ungate(db, OUTBOX)
    db.execute(f"ALTER FUNCTION {fn} RESET ALL")
    db.execute(f"UPDATE {OUTBOX}.sync_outbox_rule SET definition = "
               f"regexp_replace(definition, ' SET TimeZone = [^$]* AS \\$p2q\\$', ' AS $p2q$', 'g')")
    out = d.cli("apply").stdout
    assert "trigger re-installed" in out and "nothing enqueued" in out, out
    assert db.execute(f"SELECT count(*) FROM {OUTBOX}.sync_outbox").fetchone()[0] == 0
    cfg = db.execute("SELECT proconfig FROM pg_proc WHERE oid = %s::regprocedure"
                     % repr(f"{OUTBOX}.p2q_pinned_docs(text, record, record)")).fetchone()[0]
    assert cfg and any(c.startswith("TimeZone=") for c in cfg), cfg  # the current code is installed
    assert "rule docs: unchanged" in d.cli("apply").stdout
    # a definition recorded without a fingerprint (an older build) and the same SQL: unchanged,
    # and the fingerprint is recorded for the next upgrade
    db.execute(f"UPDATE {OUTBOX}.sync_outbox_rule SET definition = "
               f"regexp_replace(definition, '-- events fingerprint [0-9a-f]+\\n', '')")
    assert "rule docs: unchanged" in d.cli("apply").stdout
    assert "-- events fingerprint " in db.execute(f"SELECT definition FROM {OUTBOX}.sync_outbox_rule").fetchone()[0]
    assert db.execute(f"SELECT count(*) FROM {OUTBOX}.sync_outbox").fetchone()[0] == 0
    # a changed rule (another key of its section) is a new definition of its events: reloaded
    db.execute(f"DELETE FROM {OUTBOX}.sync_outbox")
    d.path.write_text(d.path.read_text().replace("key = id", "key = id\ncolumns = id"))
    assert "50 existing row(s) enqueued" in d.cli("apply").stdout
