"""The documentation cannot drift from the code (issue 13): the config table (src/config_table.c)
is the one source of `--help-config`, the man page pg2qdrant.ini(5) (`--man-config`, installed
from the build) and conf/pg2qdrant.ini; pg2qdrant(1) names every command of the command table,
every exit status and the sections an operator looks for. No PostgreSQL needed."""
import os
import pathlib
import re
import subprocess

from conftest import BIN, ROOT

BUILD = pathlib.Path(os.environ.get("P2Q_BUILD_DIR", ROOT / "build"))


def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, check=True).stdout


def table_keys():
    """{section: {key: default or None}} from --help-config."""
    out, sec = {}, None
    for line in run("--help-config").splitlines():
        m = re.match(r"^\[([a-z]+)(\.NAME)?\]", line)
        if m:
            sec = m.group(1)
            out[sec] = {}
            continue
        m = re.match(r"^  ([a-z_]+) \((.*)\)$", line)
        if m and sec:
            d = re.search(r"default ([^,]+)", m.group(2))
            out[sec][m.group(1)] = d.group(1).strip('"') if d else None
    return out


def test_help_config_lists_every_section():
    keys = table_keys()
    assert set(keys) == {"postgres", "qdrant", "daemon", "log", "http", "embedder", "rule", "worker"}
    assert all(keys.values())


def test_man_config_has_every_key_and_is_what_is_installed():
    man = run("--man-config")
    for sec, keys in table_keys().items():
        assert re.search(rf"^\.SH \[{sec}(\.NAME)?\]$", man, re.M), sec
        for k, default in keys.items():
            assert f".B {k}\n" in man, (sec, k)
            if default:
                assert f"default \\fB{default.replace('-', chr(92) + '-')}\\fR" in man, (sec, k, default)
    built = BUILD / "man" / "pg2qdrant.ini.5"
    assert built.read_text() == man  # the man page the build installs is generated, never edited


def test_example_config_documents_every_key_with_its_default():
    """conf/pg2qdrant.ini: every key of every section, singletons as `;key = default` under their
    header (the same default as the table), repeated sections in their comment block; and no
    key the table does not know."""
    text = (ROOT / "conf" / "pg2qdrant.ini").read_text()
    keys = table_keys()
    blocks, sec = {}, None
    for line in text.splitlines():
        m = re.match(r"^;?\s*\[([a-z]+)(\.[A-Za-z0-9_-]+)?\]", line)
        if m and m.group(1) in keys:
            sec = m.group(1)
            blocks.setdefault(sec, [])
            continue
        if sec:
            blocks[sec].append(line)
    for sec, table in keys.items():
        found = {}
        for line in blocks.get(sec, []):
            m = re.match(r"^;?\s*([a-z_]+) =\s*(.*?)\s*(;.*)?$", line) if not line.startswith("; ") or \
                re.match(r"^;\s+[a-z_]+ =", line) else None
            if m:
                found.setdefault(m.group(1), m.group(2).split("  ")[0].strip())
        missing = set(table) - set(found)
        assert not missing, f"conf/pg2qdrant.ini [{sec}] does not document {sorted(missing)}"
        unknown = set(found) - set(table)
        assert not unknown, f"conf/pg2qdrant.ini [{sec}] documents unknown keys {sorted(unknown)}"
        if sec in ("postgres", "qdrant", "daemon", "log", "http"):
            for k, default in table.items():
                assert found[k] == (default or ""), f"[{sec}] {k}: conf says {found[k]!r}, table {default!r}"


def test_man_page_names_every_command_exit_status_and_section():
    man = (ROOT / "man" / "pg2qdrant.1").read_text()
    help_text = run("--help")
    commands = re.findall(r"^  ([a-z]+)\b", help_text.split("commands:")[1], re.M)
    assert "check" in commands and "run" in commands
    for c in commands:
        assert re.search(rf"^(\.B {c}$|\\fB{c}\\fR|\\fB{c} )", man, re.M), f"pg2qdrant.1 lacks command {c}"
    for code in "0123":
        assert f".B {code}\n" in man
    for section in ("OPTIONS", "COMMANDS", "EXIT STATUS", "ENVIRONMENT", "SIGNALS", "FILES"):
        assert f".SH {section}\n" in man
    for opt in ("--config", "--help-config", "--man-config", "--version"):
        assert opt.replace("-", "\\-") in man, opt
    for page in (ROOT / "man" / "pg2qdrant.1", BUILD / "man" / "pg2qdrant.ini.5"):
        r = subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True, text=True,
                           env=dict(os.environ, MANWIDTH="100", MANPAGER="cat", PAGER="cat"))
        if r.returncode == 0:  # renders without a groff warning where man-db is installed
            out = re.sub(".\x08", "", r.stdout)
            assert "SYNOPSIS" in out and not r.stderr.strip(), (page, r.stderr)
