"""`pg2qdrant bench` against real PostgreSQL and the Qdrant test server.

- a tiny sweep (batch_size x replicas, drain + steady): the CSV has one row per run with the
  documented columns and plausible figures, the recommendation is printed as config lines, the
  scratch schema, collections, daemons and backends are gone afterwards, look-alike objects that
  the bench did not create are untouched, and the HTML report renders in headless Chromium with
  every chart (screenshot kept in the test's tmp dir);
- SIGINT in the middle of a run: exit 130, everything it created is dropped, its daemons are gone;
- the mixed and text workloads (text through the MiniLM embedder when the model is present);
- `--sink null`: drain and steady against the built-in null sink (the config's Qdrant URL is never
  used), every event counted by the sink, its CPU measured, nothing left behind.
Speed is not asserted: the figures only have to be there and be consistent.
"""
import csv
import os
import pathlib
import re
import shutil
import signal
import struct
import subprocess
import time
import zlib

import psycopg
import pytest

from conftest import BIN, ROOT, wait_until

COLUMNS = ("point,repeat,workload,writer,batch_size,linger_ms,max_inflight,claimers,workers,replicas,embedder_threads,idle_linger_ms,events,"
           "seconds,events_per_s,commits_per_s,p50_ms,p90_ms,p99_ms,max_ms,latency_samples,observe_rtt_ms,"
           "cpu_us_pg2qdrant,cpu_us_pg_daemon,cpu_us_pg_autovacuum,cpu_us_pg_autovacuum_other,cpu_us_pg_writers,"
           "cpu_us_qdrant,cpu_us_bench,qdrant_request_ms,qdrant_requests,peak_rss_mib,outbox_dead_tuples,outbox_bytes,"
           "pgss_us_per_event,tail_s,leases_reclaimed,dead_letters,missing,ok,error").split(",")
MODEL = ROOT / "models" / "all-MiniLM-L6-v2"


def write_config(tmp_path, qdrant, extra=""):
    p = tmp_path / "bench.ini"
    p.write_text(f"[qdrant]\nurl = {qdrant.url}\ntimeout = 10s\n[daemon]\nretry_min = 50ms\n{extra}")
    return p


def bench_env(pgdb):
    return dict(os.environ, PGDATABASE=pgdb)


def leftovers(db, qdrant):
    """The bench's scratch objects still there (the look-alikes excepted)."""
    schemas = [r[0] for r in db.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'p2q_bench_%'")
               if r[0] != "p2q_bench_notmine"]
    colls = [c["name"] for c in qdrant.call("GET", "/collections")[1]["result"]["collections"]
             if c["name"].startswith("p2q_bench_") and not c["name"].startswith("p2q_bench_notmine")]
    backends = [r[0] for r in db.execute(
        "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'p2q_bench%' "
        "AND datname = current_database()")]
    return schemas, colls, backends


def lookalikes(db, qdrant):
    """Objects named like the bench's that it must never touch."""
    db.execute('CREATE SCHEMA "p2q_bench_notmine"')
    db.execute('CREATE TABLE "p2q_bench_notmine".keep (id int)')
    st, body = qdrant.call("PUT", "/collections/p2q_bench_notmine_vec",
                           {"vectors": {"size": 4, "distance": "Dot"}})
    assert st == 200, body


def assert_lookalikes_kept(db, qdrant):
    assert db.execute("SELECT to_regclass('\"p2q_bench_notmine\".keep')").fetchone()[0] is not None
    names = [c["name"] for c in qdrant.call("GET", "/collections")[1]["result"]["collections"]]
    assert "p2q_bench_notmine_vec" in names
    db.execute('DROP SCHEMA "p2q_bench_notmine" CASCADE')
    qdrant.call("DELETE", "/collections/p2q_bench_notmine_vec")


def chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe:
        return exe
    if os.environ.get("P2Q_CI") or os.environ.get("CI"):
        pytest.fail("chromium is not installed (scripts/deps installs Debian's chromium package)")
    pytest.skip("chromium is not installed: run scripts/deps (as root) to check the HTML report")


def png_pixels(path):
    """(width, height, distinct byte values of the decoded scanlines) of a PNG."""
    data = pathlib.Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
    raw = zlib.decompress(idat)
    return w, h, len(set(raw[:2_000_000]))


def pg_stat_statements_usable(db):
    """Install pg_stat_statements in the test database; True when its view answers (the server
    preloads the library), False otherwise (the bench must then leave its column empty)."""
    try:
        db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        db.execute("SELECT 1 FROM pg_stat_statements LIMIT 1")
        return True
    except psycopg.Error:
        return False


def test_bench_sweep_csv_cleanup_and_report(tmp_path, pgdb, db, qdrant):
    lookalikes(db, qdrant)
    pgss = pg_stat_statements_usable(db)
    # (no lease reclaimer since migration 015: a drain's CPU window ends at empty without --wait-vacuum)
    cfg = write_config(tmp_path, qdrant, "")
    out = tmp_path / "out"
    cmd = [BIN, "-c", str(cfg), "bench", "--workload", "drain,steady", "--rows", "400", "--dim", "8",
           "--rate", "40", "--duration", "2s", "--sweep", "batch_size=16,64", "--sweep", "replicas=1,2",
           "--p99-max", "2s", "--out", str(out)]
    r = subprocess.run(cmd, env=bench_env(pgdb), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"stdout: {r.stdout}\nstderr: {r.stderr}"
    # the recommendation, as config lines to paste
    assert "recommendation (point" in r.stdout, r.stdout
    assert re.search(r"\[worker\.w1\]\nbatch_size = (16|64)\nlinger_ms = 5\nmax_inflight = 4\n", r.stdout), r.stdout
    # one progress line per run when not on a terminal
    assert len(re.findall(r"^\[\d/8\] point \d rep 1 (drain|steady)", r.stderr, re.M)) == 8, r.stderr

    with open(out / "runs.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == COLUMNS
    runs = [dict(zip(COLUMNS, row)) for row in rows[1:]]
    assert all(len(row) == len(COLUMNS) for row in rows[1:])
    assert len(runs) == 8  # 2 batch sizes x 2 replica counts x 2 workloads
    grid = {(x["batch_size"], x["replicas"], x["workload"]) for x in runs}
    assert grid == {(b, p, w) for b in ("16", "64") for p in ("1", "2") for w in ("drain", "steady")}
    for x in runs:
        assert x["ok"] == "1" and x["error"] == "", x
        assert x["dead_letters"] == "0" and x["missing"] == "0", x
        assert float(x["events_per_s"]) > 0, x
        assert float(x["cpu_us_pg2qdrant"]) >= 0 and float(x["peak_rss_mib"]) > 0, x
        assert float(x["qdrant_requests"]) >= 1 and float(x["qdrant_request_ms"]) > 0, x
        # PostgreSQL runs on this host: its backends' CPU is measured
        assert x["cpu_us_pg_daemon"] != "", x
        assert float(x["cpu_us_pg_autovacuum"]) >= 0 and float(x["cpu_us_pg_autovacuum_other"]) >= 0, x
        if x["workload"] == "drain":
            # no lease to reclaim since migration 015: no tail without --wait-vacuum (the column stays)
            assert float(x["tail_s"]) == 0 and x["leases_reclaimed"] == "0", x
        else:
            assert x["tail_s"] == "", x
        assert x["linger_ms"] == "5" and x["max_inflight"] == "4" and x["workers"] == "1", x
        # the writers' protocol: the default for steady, none for a drain
        assert x["writer"] == ("" if x["workload"] == "drain" else "prepared-text"), x
        # PostgreSQL's own view: the scratch schema's statements per event, when it can tell
        assert (x["pgss_us_per_event"] != "") == pgss, x
        if pgss:
            assert float(x["pgss_us_per_event"]) > 0, x
        if x["workload"] == "drain":
            assert x["events"] == "400", x
            assert x["p99_ms"] == "" and x["latency_samples"] == "0", x
        else:
            assert 40 <= int(x["events"]) <= 81, x  # 40 commits/s for 2 s
            assert int(x["latency_samples"]) == int(x["events"]), x
            p50, p99, mx = float(x["p50_ms"]), float(x["p99_ms"]), float(x["max_ms"])
            assert 0 < p50 <= p99 <= mx, x
            assert abs(float(x["commits_per_s"]) - 40) < 5, x
            assert x["cpu_us_pg_writers"] != "", x

    # nothing of the bench is left; what it did not create is untouched
    wait_until(lambda: leftovers(db, qdrant) == ([], [], []), timeout=10, what="nothing left",
               explain=lambda: repr(leftovers(db, qdrant)))
    assert_lookalikes_kept(db, qdrant)

    # the report renders in a browser with every chart
    html = out / "report.html"
    text = html.read_text()
    assert "<script" not in text
    if pgss:
        assert "top statements on the scratch schema" in text and "sync_outbox_ack" in text
    else:
        assert "pg_stat_statements is not installed in this database" in text
    exe = chromium()
    dom = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", html.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    for chart in ("tput-points", "tput-batch_size", "tput-replicas", "latency-cdf", "latency-pct", "cpu-stack"):
        assert re.search(rf'<svg id="{chart}" class="chart"', dom), chart
    assert len(re.findall(r'<circle class="pt"', dom)) == 8  # 4 points on each knob's chart
    assert len(re.findall(r'<polyline class="cdf"', dom)) == 4
    assert len(re.findall(r'<rect class="bar p99"', dom)) == 4
    assert len(re.findall(r'<rect class="seg"', dom)) >= 4
    assert 'id="recommendation"' in dom and 'class="rec"' in dom
    assert len(re.findall(r"<tr>", dom.split('id="runs"')[1])) == 1 + 8
    shot = tmp_path / "report.png"
    subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1000,1800",
                    f"--screenshot={shot}", html.as_uri()], capture_output=True, timeout=120)
    w, h, distinct = png_pixels(shot)
    assert (w, h) == (1000, 1800)
    assert distinct > 20, "the screenshot is blank"
    print(f"report screenshot: {shot}")


def test_bench_help_needs_no_config(tmp_path):
    r = subprocess.run([BIN, "bench", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    for opt in ("--workload", "--sweep KNOB=V1,V2", "--repeat", "--p99-max", "--one-axis", "--qdrant-pid",
                "--writer MODE        steady/mixed: how the writers send their statements: unprepared-text, "
                "prepared-text, prepared-binary"):
        assert opt in r.stdout, opt
    r = subprocess.run([BIN, "-c", str(tmp_path / "none.ini"), "bench", "--rows", "x"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2  # a missing config is still an error for a real run


def children_of(pid):
    kids = []
    for d in pathlib.Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(d.name))
    return kids


@pytest.mark.parametrize("when", ["steady", "queueing"])
def test_bench_sigint_drops_everything(tmp_path, pgdb, db, qdrant, when):
    lookalikes(db, qdrant)
    cfg = write_config(tmp_path, qdrant)
    if when == "steady":  # daemons and writers running
        args = ["--workload", "steady", "--rate", "50", "--duration", "60s", "--sweep", "replicas=2"]
    else:  # the backlog INSERT running (cancelled through PQcancel)
        args = ["--workload", "drain", "--rows", "3000000", "--dim", "64"]
    p = subprocess.Popen([BIN, "-c", str(cfg), "bench", *args, "--out", str(tmp_path / "out")],
                         env=bench_env(pgdb), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if when == "steady":
            # two daemons up and their backends connected: mid-run
            wait_until(lambda: len(children_of(p.pid)) == 2 and db.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'p2q_bench_%_d' "
                "AND datname = current_database()").fetchone()[0] >= 2,
                timeout=60, what="the bench's daemons")
            time.sleep(1.0)
            daemons = children_of(p.pid)
            assert len(daemons) == 2, daemons
        else:
            wait_until(lambda: db.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'p2q_bench' "
                                          "AND query LIKE 'TRUNCATE%INSERT INTO%' AND state = 'active' "
                                          "AND datname = current_database()").fetchone()[0],
                       timeout=60, what="the backlog INSERT")
            daemons = []
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, f"stdout: {out}\nstderr: {err}"
    assert "interrupted: dropping the scratch schema and collections" in err
    for d in daemons:
        assert not pathlib.Path(f"/proc/{d}").exists(), f"daemon {d} still runs"
    wait_until(lambda: leftovers(db, qdrant) == ([], [], []), timeout=10, what="nothing left",
               explain=lambda: repr(leftovers(db, qdrant)))
    assert_lookalikes_kept(db, qdrant)
    print(f"{when}: stopped and cleaned up {took:.1f} s after SIGINT")
    if when == "queueing":
        assert took < 20, "Ctrl-C waited for the whole backlog INSERT"


def test_bench_mixed_and_text(tmp_path, pgdb, db, qdrant):
    have_model = (MODEL / "model.safetensors").exists()
    if not have_model and os.environ.get("P2Q_REQUIRE_MODEL") == "1":
        pytest.fail(f"MiniLM model missing at {MODEL}")
    extra = f"[embedder.mini]\ntype = minilm\nmodel_dir = {MODEL}\nthreads = 1\n" if have_model else ""
    cfg = write_config(tmp_path, qdrant, extra)
    workloads = "mixed,text" if have_model else "mixed"
    out = tmp_path / "out"
    r = subprocess.run([BIN, "-c", str(cfg), "bench", "--workload", workloads, "--rate", "40", "--duration", "2s",
                        "--rows-per-txn", "3", "--writers", "2", "--mix", "40,40,20", "--hot", "0.9,5",
                        "--preload", "50", "--text-rows", "40", "--dim", "8", "--out", str(out)],
                       env=bench_env(pgdb), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"stdout: {r.stdout}\nstderr: {r.stderr}"
    with open(out / "runs.csv", newline="") as f:
        runs = list(csv.DictReader(f))
    assert [x["workload"] for x in runs] == workloads.split(",")
    mixed = runs[0]
    assert mixed["ok"] == "1", mixed
    # 80 commits x 3 operations; updates/deletes of already deleted rows change nothing
    assert 60 <= int(mixed["events"]) <= 243, mixed
    # hot rows: many changes superseded before they were seen, the rest measured
    assert 0 < int(mixed["latency_samples"]) <= int(mixed["events"]), mixed
    assert float(mixed["p99_ms"]) > 0
    if have_model:
        text = runs[1]
        assert text["ok"] == "1" and text["events"] == "40", text
        assert float(text["events_per_s"]) > 0
    wait_until(lambda: leftovers(db, qdrant) == ([], [], []), timeout=10, what="nothing left")


def test_bench_null_sink_counts_every_event(tmp_path, pgdb, db):
    """The config's [qdrant] url is a closed port: everything goes to the null sink. A drain is only
    ok when the sink's exact count equals the events queued (run_drain's `missing`), so ok=1 with
    missing=0 on 2 replicas proves every point reached it; steady proves retrieve-by-id with the
    payload's seq (the latency observer) works against it."""
    cfg = tmp_path / "bench.ini"
    cfg.write_text("[qdrant]\nurl = http://127.0.0.1:9\ntimeout = 10s\n[daemon]\nretry_min = 50ms\n"
                   "lease_reclaim_interval = 2s\n")  # deprecated since migration 015: accepted, ignored
    out = tmp_path / "out"
    cmd = [BIN, "-c", str(cfg), "bench", "--sink", "null", "--workload", "drain,steady", "--rows", "3000",
           "--dim", "384", "--rate", "50", "--duration", "2s", "--sweep", "replicas=1,2", "--repeat", "2",
           "--sweep", "batch_size=64", "--out", str(out)]
    r = subprocess.run(cmd, env=bench_env(pgdb), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"stdout: {r.stdout}\nstderr: {r.stderr}"
    assert "of Qdrant: measured (the null sink)" in r.stderr, r.stderr
    with open(out / "runs.csv", newline="") as f:
        runs = [dict(zip(COLUMNS, row)) for row in list(csv.reader(f))[1:]]
    assert len(runs) == 8
    for x in runs:
        assert x["ok"] == "1" and x["error"] == "" and x["missing"] == "0" and x["dead_letters"] == "0", x
        assert float(x["qdrant_requests"]) >= 1 and x["cpu_us_qdrant"] != "", x
        if x["workload"] == "drain":
            assert x["events"] == "3000", x
            assert float(x["qdrant_requests"]) >= 3000 / 64, x  # batches of at most 64 points
        else:
            assert int(x["latency_samples"]) == int(x["events"]) > 0, x
    # the scratch schema is gone, and so are the daemons and the sink (children of the bench)
    schemas = db.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'p2q_bench_%'").fetchall()
    assert schemas == []
    # the forked sink keeps the bench's command line (the daemons name generated configs in it)
    def ours():
        found = []
        for d in pathlib.Path("/proc").iterdir():
            try:
                if d.name.isdigit() and str(tmp_path) in (d / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(d.name)
            except OSError:
                pass
        return found
    wait_until(lambda: ours() == [], timeout=10, what="no sink or daemon left", explain=lambda: repr(ours()))


def test_bench_wait_vacuum(tmp_path, pgdb, db):
    """--wait-vacuum D keeps a drain's CPU window open after empty until autovacuum has
    vacuumed the outbox (and no autovacuum worker of the database is left), at most D; the
    autovacuum columns are measured (PostgreSQL is local). Autovacuum comes at most once a minute,
    so whether it comes inside D is not up to the test: only the bound is asserted."""
    cfg = tmp_path / "bench.ini"
    cfg.write_text("[qdrant]\nurl = http://127.0.0.1:9\n[daemon]\nlease_reclaim_interval = 1s\n")
    out = tmp_path / "out"
    r = subprocess.run([BIN, "-c", str(cfg), "bench", "--sink", "null", "--workload", "drain", "--rows", "2000",
                        "--dim", "8", "--wait-vacuum", "3s", "--out", str(out)],
                       env=bench_env(pgdb), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"stdout: {r.stdout}\nstderr: {r.stderr}"
    with open(out / "runs.csv", newline="") as f:
        (x,) = [dict(zip(COLUMNS, row)) for row in list(csv.reader(f))[1:]]
    assert x["ok"] == "1" and x["leases_reclaimed"] == "0", x  # no lease table since migration 015
    # the vacuum wait (<= 3 s) + sampling slack
    assert 0 <= float(x["tail_s"]) <= 3 + 1, x
    assert x["writer"] == "" and "writer " not in (out / "report.html").read_text()  # a drain runs no writer
    assert float(x["cpu_us_pg_autovacuum"]) >= 0 and float(x["cpu_us_pg_autovacuum_other"]) >= 0, x
    bad = subprocess.run([BIN, "-c", str(cfg), "bench", "--wait-vacuum", "soon"], capture_output=True, text=True,
                         timeout=30)
    assert bad.returncode == 2 and "--wait-vacuum: 'soon' is not a duration" in bad.stderr, bad.stderr


def test_bench_sink_option_refused(tmp_path):
    cfg = tmp_path / "bench.ini"
    cfg.write_text("[qdrant]\nurl = http://127.0.0.1:9\n")
    r = subprocess.run([BIN, "-c", str(cfg), "bench", "--sink", "nul"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--sink: null or qdrant, not 'nul'" in r.stderr, r.stderr


# Every row the bench's writers insert into its scratch table, copied out by a row trigger that an
# event trigger attaches when the bench creates the table (the bench drops its schema at the end),
# with what the writer's own session had prepared at that moment (pg_prepared_statements is
# per session: the trigger runs in the writer's backend).
COPY_ROWS_SQL = """
CREATE TABLE public.bench_copy (n bigserial, tab text, app text, pid int, id bigint, emb real[], prepared text[]);
CREATE FUNCTION public.bench_copy_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.bench_copy (tab, app, pid, id, emb, prepared)
  SELECT TG_TABLE_SCHEMA, current_setting('application_name'), pg_backend_pid(), NEW.id, NEW.emb,
         (SELECT array_agg(name || ':' || (generic_plans + custom_plans) ORDER BY name) FROM pg_prepared_statements);
  RETURN NULL;
END $$;
CREATE FUNCTION public.bench_copy_attach() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE o record;
BEGIN
  FOR o IN SELECT object_identity FROM pg_event_trigger_ddl_commands()
           WHERE object_type = 'table' AND object_identity LIKE 'p2q\\_bench\\_%.items' LOOP
    EXECUTE format('CREATE TRIGGER bench_copy AFTER INSERT ON %s FOR EACH ROW EXECUTE FUNCTION public.bench_copy_row()',
                   o.object_identity);
  END LOOP;
END $$;
CREATE EVENT TRIGGER bench_copy ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
  EXECUTE FUNCTION public.bench_copy_attach();
"""


def test_bench_writer_modes(tmp_path, pgdb, db):
    """--writer: unprepared-text sends unnamed statements (nothing prepared in the writer's
    session); prepared-text and prepared-binary prepare the three statements once per connection
    (the insert's executions count up 1, 2, 3, … in each writer's session: never prepared again)
    and the binary vector reaches the table identical to the text one (the same draws in every
    mode: each writer's k-th row carries the same array in every run). runs.csv and the report
    name the mode; a drain has none (its rows come from the bench's own connection)."""
    db.execute(COPY_ROWS_SQL)
    cfg = tmp_path / "bench.ini"
    cfg.write_text("[qdrant]\nurl = http://127.0.0.1:9\ntimeout = 10s\n[daemon]\nretry_min = 50ms\n")
    arrays = {}
    for mode in ("unprepared-text", "prepared-text", "prepared-binary"):
        out = tmp_path / mode
        workloads = "drain,steady" if mode == "prepared-binary" else "steady"
        r = subprocess.run([BIN, "-c", str(cfg), "bench", "--sink", "null", "--workload", workloads, "--rows", "200",
                            "--rate", "20", "--duration", "2s", "--writers", "2", "--writer", mode, "--out", str(out)],
                           env=bench_env(pgdb), capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"stdout: {r.stdout}\nstderr: {r.stderr}"
        with open(out / "runs.csv", newline="") as f:
            runs = list(csv.DictReader(f))
        assert [(x["workload"], x["writer"]) for x in runs] == \
            ([("drain", "")] if "drain" in workloads else []) + [("steady", mode)], runs
        assert all(x["ok"] == "1" for x in runs), runs
        assert f"writer {mode}" in (out / "report.html").read_text()
        (tab,) = db.execute("SELECT DISTINCT tab FROM public.bench_copy WHERE tab NOT IN "
                            "(SELECT unnest(%s::text[]))", (list(arrays),)).fetchone()
        rows = db.execute("SELECT pid, id, emb::text, prepared FROM public.bench_copy WHERE tab = %s "
                          "AND app = 'p2q_bench_writer' ORDER BY n", (tab,)).fetchall()
        assert len({pid for pid, _, _, _ in rows}) == 2, rows  # both writers wrote
        assert len(rows) >= 30, len(rows)  # 20 commits/s for 2 s
        for pid in {pid for pid, _, _, _ in rows}:
            mine = [p for q, _, _, p in rows if q == pid]
            if mode == "unprepared-text":
                assert mine == [None] * len(mine), mine
            else:
                assert mine == [["p2q_bench_delete:0", f"p2q_bench_insert:{k}", "p2q_bench_update:0"]
                                for k in range(1, len(mine) + 1)], mine
        # each writer's arrays in commit order (the writers' order by their first array)
        arrays[tab] = sorted([e for q, _, e, _ in rows if q == pid] for pid in {pid for pid, _, _, _ in rows})
    # the same draws in every mode: each writer's k-th row has the same array in every run
    (a, b, c) = arrays.values()
    for w in range(2):
        n = min(len(a[w]), len(b[w]), len(c[w]))
        assert n >= 15, (len(a[w]), len(b[w]), len(c[w]))
        assert a[w][:n] == b[w][:n] == c[w][:n]
    assert a[0][0].count(",") == 383 and a[0][0] != a[1][0]  # 384 floats; the writers draw apart
    bad = subprocess.run([BIN, "-c", str(cfg), "bench", "--writer", "binary"], capture_output=True, text=True,
                         timeout=30)
    assert bad.returncode == 2 and "--writer: one of unprepared-text, prepared-text, prepared-binary, not 'binary'" \
        in bad.stderr, bad.stderr
