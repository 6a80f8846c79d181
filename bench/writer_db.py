"""The writer benches' database (bench/writer_floor_bench.py, bench/writer_components_bench.py):
a fresh database with table w (id, note, emb real[384]), pg2qdrant's outbox (`init`) and the real
capture trigger of rule w (columns = id, the vector sent unprinted), installed with `apply
--dry-run` piped to psql (no Qdrant needed). PostgreSQL from libpq's environment."""
import os
import pathlib
import subprocess
import tempfile

import psycopg

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = os.environ.get("P2Q_BIN", str(ROOT / "build" / "pg2qdrant"))


def create(db, schema=None, force=False, locale=None, partitioned=False):
    """Drop (WITH (FORCE) when force) and create database db (with locale: from template0 with that
    LOCALE, e.g. en_US.UTF-8), then install the outbox (in schema, default the config's) and rule w's
    trigger. partitioned: w is partitioned by range of id, one partition w_0 takes every row (the
    row trigger's clone on w_0 fires: capture_relid.c's partition test)."""
    with psycopg.connect(dbname="postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{db}"' + (" WITH (FORCE)" if force else ""))
        c.execute(f'CREATE DATABASE "{db}"' + (f" TEMPLATE template0 LOCALE '{locale}'" if locale else ""))
    with tempfile.TemporaryDirectory() as tmp:
        ini = pathlib.Path(tmp) / "w.ini"
        ini.write_text("[qdrant]\nurl = http://127.0.0.1:1\n" + (f"[postgres]\nschema = {schema}\n" if schema else "")
                       + "[rule.w]\ntable = public.w\nkey = id\nvector_column = emb\ndimension = 384\n"
                       "collection = w\ncolumns = id\n")
        env = dict(os.environ, PGDATABASE=db)
        with psycopg.connect(dbname=db, autocommit=True) as c:
            c.execute("CREATE TABLE w (id bigint PRIMARY KEY, note text, emb real[])"
                      + (" PARTITION BY RANGE (id)" if partitioned else ""))
            if partitioned:
                c.execute("CREATE TABLE w_0 PARTITION OF w FOR VALUES FROM (MINVALUE) TO (MAXVALUE)")
        subprocess.run([BIN, "-c", str(ini), "init"], env=env, check=True, capture_output=True)
        sql = subprocess.run([BIN, "-c", str(ini), "apply", "--dry-run"], env=env, capture_output=True, text=True).stdout
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", db], input=sql, text=True, check=True,
                       capture_output=True)
