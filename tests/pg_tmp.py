"""scripts/pg-tmp from Python: start a throwaway PostgreSQL and get back the environment it prints
(PGHOST, PGPORT, PGUSER, PGDATABASE, P2Q_PG_DIR), or stop one. The one reader of pg-tmp's output
for the integration tests' per-worker clusters (tests/integration/conftest.py) and the benchmarks
(bench/daemon_bench.py, bench/pg_callgrind.py)."""
import pathlib
import subprocess

PG_TMP = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "pg-tmp"


def start(pgdir, timeout=120):
    """Start (or reuse) the cluster in pgdir; returns its libpq environment as a dict."""
    r = subprocess.run([str(PG_TMP), "start", str(pgdir)], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"pg-tmp start {pgdir} failed: {r.stderr[-2000:]}")
    env = {}
    for line in r.stdout.splitlines():
        if line.startswith("export "):
            for kv in line[len("export "):].split():
                k, v = kv.split("=", 1)
                env[k] = v
    return env


def stop(pgdir, timeout=120, check=False):
    """Stop the cluster in pgdir; check: raise if pg-tmp fails (a caller about to copy its files)."""
    r = subprocess.run([str(PG_TMP), "stop", str(pgdir)], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"pg-tmp stop {pgdir} failed: {r.stderr[-2000:]}")
