"""The shipped dashboard and alert rules (issue 13) reference only what the daemon exports: every
pg2qdrant_* metric in conf/grafana/pg2qdrant.json and conf/prometheus/alerts.yml is a family a
running daemon declares on /metrics (histogram series by their _bucket/_sum/_count), and every
label they select on is one its samples carry. `promtool check rules` validates the alerts where
promtool is installed (scripts/deps extracts it from Debian's prometheus package)."""
import json
import os
import re
import shutil
import signal
import subprocess
import urllib.request

import pytest

from conftest import ROOT, free_port, outbox_counts, wait_until
from openai_stub import OpenAIStub

DASHBOARD = ROOT / "conf" / "grafana" / "pg2qdrant.json"
ALERTS = ROOT / "conf" / "prometheus" / "alerts.yml"
PROM_LABELS = {"instance", "job", "le"}  # added by Prometheus, or the histogram's own


def exprs():
    """(source, PromQL expression) of every query of the dashboard and every alert rule."""
    out = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                out.append(("dashboard", node["expr"]))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(json.loads(DASHBOARD.read_text()))
    text = ALERTS.read_text()
    for m in re.finditer(r"^\s+expr: (>-\n((?:\s{10}.*\n)+)|(.*)\n)", text, re.M):
        out.append(("alerts", (m.group(2) or m.group(3)).strip()))
    return out


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    types, labels = {}, {}
    for line in text.splitlines():
        m = re.match(r"^# TYPE (\S+) (\S+)$", line)
        if m:
            types[m.group(1)] = m.group(2)
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? ", line)
        if m:
            labels.setdefault(m.group(1), set()).update(re.findall(r'(\w+)="', m.group(3) or ""))
    return text, types, labels


def family(name, types):
    if name in types:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)]
        if name.endswith(suffix) and types.get(base) in ("histogram", "summary"):
            return base
    return None


def test_dashboard_is_well_formed():
    d = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    titles = " ".join(p["title"] for p in d["panels"]).lower()
    for topic in ("events per second", "sync lag", "backlog by event type", "dead letters", "breaker state",
                  "qdrant request latency", "embedding latency"):
        assert topic in titles, topic
    for p in d["panels"]:
        if p["type"] != "row":
            assert p["targets"] and p["datasource"]["uid"] == "${datasource}", p["title"]


def test_every_referenced_metric_is_exported(make_daemon, db, qdrant):
    db.execute("CREATE TABLE docs (id int PRIMARY KEY, title text, emb real[])")
    db.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
    stub = OpenAIStub(dim=8, api_key="sk-test")
    port = free_port()
    try:
        d = make_daemon({
            "rule.docs": {"table": "public.docs", "key": "id", "columns": "id, title", "vector_column": "emb",
                          "dimension": "4", "collection": "docs"},
            "embedder.oa": {"type": "openai", "url": stub.url, "model": "m", "api_key_env": "P2Q_TEST_OPENAI_KEY",
                            "dimensions": "8"},
            "rule.notes": {"table": "public.notes", "key": "id", "text": "body", "embedder": "oa",
                           "collection": "notes"},
            "daemon": {"max_attempts": "1"}, "http": {"listen": f"127.0.0.1:{port}"}})
        d.env["P2Q_TEST_OPENAI_KEY"] = "sk-test"
        d.cli("apply")
        p = d.start()
        # traffic so that every labelled series exists: applied events, embeddings, one dead letter,
        # a reload, a missing collection (an unhealthy target), pending events
        db.execute("INSERT INTO docs VALUES (1, 'a', '{1,0,0,0}'), (2, 'bad', '{1,2}')")
        db.execute("INSERT INTO notes VALUES (1, 'hello')")
        wait_until(lambda: outbox_counts(db) == (0, 1), what="applied, one dead", explain=d.log_text)
        p.send_signal(signal.SIGHUP)
        qdrant.delete_collection("docs__v1")  # behind the alias docs (README "Re-embedding")
        db.execute("INSERT INTO docs VALUES (3, 'c', '{1,0,0,0}')")

        def scraped():
            text, types, labels = scrape(port)
            lines = text.splitlines()
            want = ('pg2qdrant_outbox_events{', 'pg2qdrant_target_unhealthy{', 'pg2qdrant_config_reloads_total{',
                    'pg2qdrant_embed_duration_seconds_bucket{')
            return (text, types, labels) if all(any(ln.startswith(w) for ln in lines) for w in want) else None
        text, types, labels = wait_until(scraped, what="every labelled family on /metrics",
                                         explain=lambda: d.log_text()[-3000:])
        d.stop(p)
    finally:
        stub.close()

    problems, used = [], set()
    for source, e in exprs():
        for name in set(re.findall(r"\bpg2qdrant_[a-z0-9_]+", e)):
            fam = family(name, types)
            used.add(fam or name)
            if not fam:
                problems.append(f"{source}: {name} is not exported (in: {e})")
        for name, sel in re.findall(r"\b(pg2qdrant_[a-z0-9_]+)\{([^}]*)\}", e):
            for label in re.findall(r"(\w+)\s*(?:=~|!=|!~|=)", sel):
                if label not in PROM_LABELS and label not in labels.get(name, set()) | \
                        labels.get(family(name, types) or name, set()) | labels.get(name + "_bucket", set()):
                    problems.append(f"{source}: {name} has no label {label} (in: {e})")
        for grouping in re.findall(r"\bby \(([^)]*)\)", e):
            names = [n for n in re.findall(r"\bpg2qdrant_[a-z0-9_]+", e)]
            have = set().union(*(labels.get(n, set()) | labels.get(n + "_bucket", set()) for n in names)) \
                if names else set()
            for label in [x.strip() for x in grouping.split(",") if x.strip()]:
                if label not in PROM_LABELS and names and label not in have:
                    problems.append(f"{source}: grouping by {label}, which none of {names} carries (in: {e})")
    assert not problems, "\n".join(problems)
    # the topics the issue names are all covered by something exported
    for needed in ("pg2qdrant_events_applied_total", "pg2qdrant_sync_lag_seconds", "pg2qdrant_outbox_events",
                   "pg2qdrant_breaker_state", "pg2qdrant_qdrant_request_duration_seconds",
                   "pg2qdrant_embed_duration_seconds", "pg2qdrant_ready",
                   "pg2qdrant_outbox_oldest_pending_age_seconds"):
        assert needed in used, needed


def test_promtool_check_rules():
    promtool = os.environ.get("P2Q_PROMTOOL") or shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool not installed (scripts/deps extracts it from Debian's prometheus package)")
    r = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert r.returncode == 0 and "SUCCESS: 6 rules found" in r.stdout, r.stdout + r.stderr
