#!/usr/bin/env python3
"""The writers of test_capture_statement.py::test_concurrent_multi_row_writers_end_in_sync on a table
WITHOUT pg2qdrant: how many statements 3 writers make in N seconds and how many deadlocks they hit
(session 16: the deadlocks are the workload's own row-lock order, not the capture's).

    python3 bench/issue11/session16-deadlocks.py DBNAME [SECONDS]   # libpq env (PGHOST, PGUSER…)

With the capture: the test itself prints its counts (`pytest -s … -k concurrent_multi_row`).
Creates and keeps a table dl_docs in DBNAME (dropped and made again on each run). Nothing asserted.
"""
import psycopg, random, threading, time, sys
db = sys.argv[1]
secs = float(sys.argv[2]) if len(sys.argv) > 2 else 4.0
with psycopg.connect(dbname=db, autocommit=True) as c:
    c.execute("DROP TABLE IF EXISTS dl_docs; CREATE TABLE dl_docs (id bigint primary key, title text, emb real[], published boolean default true, n int not null default 0)")
counts = {"ok": 0, "err": 0}
stop = threading.Event()
def writer(seed):
    rng = random.Random(seed)
    with psycopg.connect(dbname=db, autocommit=True) as c:
        while not stop.is_set():
            keys = sorted(rng.sample(range(40), rng.randint(2, 12)))
            op = rng.random()
            try:
                if op < 0.5:
                    c.execute("INSERT INTO dl_docs (id, title, emb, published) SELECT k, 't' || k,"
                              " ARRAY[k %% 7, 0, 1, k %% 3]::real[], k %% 5 <> 0 FROM unnest(%s::bigint[]) k"
                              " ON CONFLICT (id) DO UPDATE SET n = dl_docs.n + 1, title = 'u' || (dl_docs.n + 1),"
                              " emb = ARRAY[dl_docs.id %% 7, (dl_docs.n + 1) %% 5, 1, dl_docs.id %% 3]::real[],"
                              " published = NOT dl_docs.published OR dl_docs.n %% 3 = 0", (keys,))
                elif op < 0.8:
                    c.execute("DELETE FROM dl_docs WHERE id = ANY(%s)", (keys,))
                else:
                    with c.transaction():
                        c.execute("DELETE FROM dl_docs WHERE id = ANY(%s)", (keys[::2],))
                        c.execute("INSERT INTO dl_docs (id, title, emb) SELECT k, 'x', ARRAY[1, 2, 3, 4]::real[]"
                                  " FROM unnest(%s::bigint[]) k ON CONFLICT DO NOTHING", (keys,))
                counts["ok"] += 1
            except psycopg.errors.DeadlockDetected:
                counts["err"] += 1
ts = [threading.Thread(target=writer, args=(s,)) for s in range(3)]
[t.start() for t in ts]; time.sleep(secs); stop.set(); [t.join() for t in ts]
print(counts)
