"""Instruction counts of SQL scripts in a single-user PostgreSQL under callgrind: the machine's load
cannot move them (bench/claim_instructions.py, bench/writer_components_bench.py --instructions).

    start(d)           a scratch cluster in d (scripts/pg-tmp), libpq's environment pointed at it
    freeze(d)          stop it and keep a copy of its data directory (d/clean)
    count(d, db, name, text, joined=False)
                       restore d/data from that copy, run `postgres --single db` under
                       `valgrind --tool=callgrind` over text (one statement per line; joined:
                       statements end with ";" and a blank line, `postgres -j`, so they may span
                       lines), and return the instructions collected. The callgrind file stays in
                       d/cg/<name>.out (callgrind_annotate --inclusive=yes for a profile).

Every run starts from the same copy: a run's writes (catalog rows a TRUNCATE leaves, the tables'
growth) would otherwise move the next run's count by a few %. Single-user mode sees no wire
protocol, no walwriter wake-up and no NOTIFY listener: compare variants with it, not absolute
figures with a server's. Needs valgrind, and as root the p2qtest user scripts/pg-tmp creates
(postgres refuses root).
"""
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests import pg_tmp  # noqa: E402  (the one reader of scripts/pg-tmp's output)


def start(d):
    os.environ.update(pg_tmp.start(d))


def freeze(d):
    """Call after a CHECKPOINT: pg-tmp stops the server -m immediate (synchronous_commit off)."""
    pg_tmp.stop(d, check=True)
    subprocess.run(["rm", "-rf", f"{d}/clean"], check=True)
    subprocess.run(["cp", "-a", f"{d}/data", f"{d}/clean"], check=True)


def count(d, db, name, text, joined=False):
    subprocess.run(["rm", "-rf", f"{d}/data"], check=True)
    subprocess.run(["cp", "-a", f"{d}/clean", f"{d}/data"], check=True)
    os.makedirs(f"{d}/cg", exist_ok=True)
    os.chmod(f"{d}/cg", 0o777)
    pgbin = sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    run = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={d}/cg/{name}.out", f"{pgbin}/postgres",
           "--single", "-D", f"{d}/data", "-c", "fsync=off"] + (["-j"] if joined else []) + [db]
    if os.getuid() == 0:
        run = ["runuser", "-u", "p2qtest", "--"] + run
    r = subprocess.run(run, input=text, capture_output=True, text=True)
    # single-user mode reports errors on stderr (valgrind's own lines start with ==pid==)
    errors = [line for line in (r.stdout + r.stderr).splitlines() if "ERROR" in line]
    m = re.findall(r"Collected : (\d+)", r.stderr)
    if errors or not m:
        sys.exit(f"{name}: {errors[:3] or r.stderr[-2000:]}")
    return int(m[0])
