"""Every malformed input gets one line, the right exit code, no traceback, no change.

One test drives the CLI (in process, through main()) with the inputs below and checks, for
each: the exit code, that stderr is one line (or, for imports with many bad items, a capped
list), no traceback, and that the catalogue is exactly as before. It renders the outcome as a
table and compares it with docs/bad-inputs.md; FLEETWRIGHT_WRITE_DOCS=1 rewrites that file.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.prefect

DOC = Path(__file__).resolve().parents[2] / "docs" / "bad-inputs.md"


@dataclass(frozen=True)
class Case:
    """`args` may hold "{f}", replaced by the path of a file holding `file`."""

    kind: str
    what: str
    args: tuple[str, ...]
    code: int = 2
    file: bytes | None = None
    max_lines: int = 1


def _yaml(body: str) -> bytes:
    return body.encode()


_GOOD_STEP = 'steps:\n  - goto: "http://127.0.0.1:1/"\n'
_HEAD = 'name: bad\nversion: "1"\n'

CASES: list[Case] = [
    # -- names ---------------------------------------------------------------------------
    Case("names", "empty profile name", ("profile", "add", "")),
    Case("names", "blank profile name", ("profile", "add", "   ")),
    Case("names", "leading space", ("profile", "add", " lead")),
    Case("names", "trailing space", ("profile", "add", "trail ")),
    Case("names", "slash", ("profile", "add", "a/b")),
    Case("names", "backslash", ("profile", "add", "a\\b")),
    Case("names", "parent folder", ("profile", "add", "../etc")),
    Case("names", "double dot", ("profile", "add", "a..b")),
    Case("names", "65 characters", ("profile", "add", "x" * 65)),
    Case("names", "zero-width space", ("profile", "add", "a\u200bb")),
    Case("names", "no-break space", ("profile", "add", "a\u00a0b")),
    Case("names", "right-to-left override", ("profile", "add", "a\u202eb")),
    Case("names", "byte-order mark", ("profile", "add", "a\ufeffb")),
    Case("names", "tab", ("profile", "add", "a\tb")),
    Case("names", "NUL", ("profile", "add", "a\x00b")),
    Case("names", "newline", ("profile", "add", "a\nb")),
    Case("names", "starts with '-' (after --)", ("profile", "add", "--", "-x")),
    Case("names", "duplicate", ("profile", "add", "base")),
    Case("names", "rich markup '[/]' (unknown profile)", ("profile", "show", "[/]")),
    Case("names", "rich markup '[bold]x' (unknown profile)", ("profile", "show", "[bold]x")),
    Case("names", "duplicate after NFC (Zoe + U+0308)", ("profile", "add", "Zoe\u0308")),
    Case("names", "proxy name with slash", ("proxy", "add", "bad/name", "http://h:8080")),
    Case("names", "proxy name zero-width", ("proxy", "add", "p\u200bx", "http://h:8080")),
    Case("names", "pool name '../pool' (profile)", ("profile", "add", "p1", "--pool", "../pool")),
    Case("names", "pool name zero-width (profile)", ("profile", "add", "p1", "--pool", "a\u200b")),
    Case("names", "proxy name ref with slash", ("profile", "add", "p1", "--proxy", "a/b")),
    Case("names", "unknown profile (show)", ("profile", "show", "nobody")),
    Case("names", "unknown profile (edit)", ("profile", "edit", "nobody", "--notes", "x")),
    Case("names", "unknown profile (archive)", ("profile", "archive", "nobody")),
    # -- options -------------------------------------------------------------------------
    Case("options", "unknown option", ("profile", "add", "p1", "--bogus")),
    Case("options", "option without its value", ("profile", "add", "p1", "--tag")),
    Case("options", "missing argument", ("profile", "add")),
    Case("options", "unknown command", ("profiles",)),
    Case("options", "name that looks like an option", ("profile", "add", "-x")),
    Case("options", "bad tag", ("profile", "add", "p1", "--tag", "bad tag!")),
    Case("options", "empty tag", ("profile", "add", "p1", "--tag", "")),
    Case("options", "viewport not WxH", ("profile", "add", "p1", "--viewport", "abc")),
    Case("options", "viewport too small", ("profile", "add", "p1", "--viewport", "10x10")),
    Case("options", "viewport too big", ("profile", "add", "p1", "--viewport", "99999x9")),
    Case("options", "unknown locale", ("profile", "add", "p1", "--locale", "xx-nope")),
    Case("options", "unknown timezone", ("profile", "add", "p1", "--timezone", "Mars/Base")),
    Case("options", "latitude out of range", ("profile", "add", "p1", "--geo", "1000,0")),
    Case("options", "geo not LAT,LON", ("profile", "add", "p1", "--geo", "here")),
    Case("options", "colour scheme", ("profile", "add", "p1", "--color-scheme", "purple")),
    Case("options", "state mode", ("profile", "add", "p1", "--mode", "weird")),
    Case("options", "proxy policy", ("profile", "add", "p1", "--policy", "sometimes")),
    Case("options", "ip check", ("profile", "add", "p1", "--ip-check", "maybe")),
    Case("options", "country", ("profile", "add", "p1", "--country", "Germany")),
    Case("options", "header without '='", ("profile", "add", "p1", "--header", "NoEquals")),
    Case("options", "unknown proxy", ("profile", "add", "p1", "--proxy", "nope")),
    Case("options", "proxy and pool", ("profile", "add", "p1", "--proxy", "px", "--pool", "pl")),
    Case("options", "list --status weird", ("profile", "list", "--status", "weird")),
    Case("options", "list --limit abc", ("profile", "list", "--limit", "abc")),
    Case("options", "edit with nothing to change", ("profile", "edit", "base")),
    Case("options", "--concurrency abc", ("run", "demo", "base", "--concurrency", "abc")),
    Case("options", "--concurrency 0", ("run", "demo", "base", "--concurrency", "0")),
    Case("options", "unknown command to run", ("run", "nosuch", "base")),
    Case("options", "--param without '='", ("run", "demo", "base", "--param", "x")),
    Case("options", "--trace unknown", ("run", "demo", "base", "--trace", "sometimes")),
    Case("options", "--now with --local", ("run", "demo", "base", "--now", "--local")),
    Case("options", "unknown profile to run", ("run", "demo", "nobody")),
    # -- proxies -------------------------------------------------------------------------
    Case("proxies", "URL that does not parse", ("proxy", "add", "px2", "http://[::1")),
    Case("proxies", "no port", ("proxy", "add", "px2", "host")),
    Case("proxies", "port out of range", ("proxy", "add", "px2", "http://h:99999")),
    Case("proxies", "5,000-digit port", ("proxy", "add", "px2", "http://h:" + "9" * 5000)),
    Case("proxies", "password in the URL", ("proxy", "add", "px2", "http://u:pw@h:8080")),
    Case("proxies", "scheme", ("proxy", "add", "px2", "ftp://h:21")),
    Case("proxies", "label without '='", ("proxy", "add", "px2", "h:8080", "--label", "x")),
    Case("proxies", "pool '../p'", ("proxy", "add", "px2", "h:8080", "--pool", "../p")),
    Case("proxies", "--max-sessions 0", ("proxy", "add", "px2", "h:8080", "--max-sessions", "0")),
    Case("proxies", "duplicate proxy", ("proxy", "add", "px", "h2:8080")),
    Case("proxies", "list: missing file", ("proxy", "import", "/nonexistent/list.txt")),
    Case("proxies", "list: binary", ("proxy", "import", "{f}"), file=b"\xff\xfe\x00\x81" * 64),
    Case("proxies", "list: one garbage line", ("proxy", "import", "{f}"), file=b"garbage\n"),
    Case(
        "proxies", "list: 10,000-char line", ("proxy", "import", "{f}"), file=b"h:" + b"1" * 10000
    ),
    Case(
        "proxies",
        "list: 1,000,000-digit port",
        ("proxy", "import", "{f}"),
        file=b"h:" + b"9" * 1_000_000 + b"\n",
    ),
    Case("proxies", "list: 4,000-digit port", ("proxy", "import", "{f}"), file=b"h:" + b"9" * 4000),
    Case("proxies", "list: no port", ("proxy", "import", "{f}"), file=b"user:pass@host\n"),
    Case(
        "proxies",
        "list: CSV with a bad port",
        ("proxy", "import", "{f}"),
        file=b"host,port\nh,notaport\n",
    ),
    Case(
        "proxies",
        "list: 5,000 bad lines (capped report)",
        ("proxy", "import", "{f}"),
        file=b"bad line\n" * 5000,
        max_lines=21,
    ),
    Case(
        "proxies",
        "list: --pool '../x'",
        ("proxy", "import", "{f}", "--pool", "../x"),
        file=b"h:8080\n",
    ),
    # -- files (profile import) ----------------------------------------------------------
    Case("files", "missing file", ("profile", "import", "/nonexistent/p.json")),
    Case("files", "a folder", ("profile", "import", "/tmp")),
    Case("files", "binary", ("profile", "import", "{f}"), file=bytes(range(256)) * 16),
    Case("files", "Latin-1 text", ("profile", "import", "{f}"), file=b'[{"name": "caf\xe9"}]'),
    Case("files", "invalid JSON", ("profile", "import", "{f}"), file=b"[{"),
    Case("files", "empty file", ("profile", "import", "{f}"), file=b""),
    Case("files", "a JSON number", ("profile", "import", "{f}"), file=b"42"),
    Case("files", "nested 100,000 deep", ("profile", "import", "{f}"), file=b"[" * 100_000),
    Case("files", "items not objects", ("profile", "import", "{f}"), file=b"[1]"),
    Case(
        "files",
        "zero-width name",
        ("profile", "import", "{f}"),
        file=json.dumps([{"name": "a\u200bb"}]).encode(),
    ),
    Case(
        "files",
        "unknown field",
        ("profile", "import", "{f}"),
        file=b'[{"name": "ok1", "bogus": 1}]',
    ),
    Case(
        "files",
        "bad timezone",
        ("profile", "import", "{f}"),
        file=b'[{"name": "ok1", "fingerprint": {"timezone": "Nope/Zone"}}]',
    ),
    Case(
        "files",
        "1,000 bad items (capped report)",
        ("profile", "import", "{f}"),
        file=json.dumps([{"name": f"bad/{i}"} for i in range(1000)]).encode(),
        max_lines=21,
    ),
    Case(
        "files",
        "a 100,000-character tag",
        ("profile", "import", "{f}"),
        file=json.dumps([{"name": "ok1", "tags": ["t" * 100_000]}]).encode(),
    ),
    # -- YAML (commands load) ------------------------------------------------------------
    Case("YAML", "invalid YAML", ("commands", "load", "{f}"), file=b"a: [b\n"),
    Case("YAML", "binary", ("commands", "load", "{f}"), file=b"\xff\xfe\x00" * 100),
    Case("YAML", "a list, not a mapping", ("commands", "load", "{f}"), file=b"- a\n- b\n"),
    Case("YAML", "unknown key", ("commands", "load", "{f}"), file=_yaml(_HEAD + "bogus: 1\n")),
    Case(
        "YAML",
        "duplicate key",
        ("commands", "load", "{f}"),
        file=_yaml(_HEAD + 'version: "2"\n' + _GOOD_STEP),
    ),
    Case(
        "YAML",
        "python: module that does not exist",
        ("commands", "load", "{f}"),
        file=_yaml(_HEAD + "python: no_such_module:run\n"),
    ),
    Case(
        "YAML",
        "python: not a dotted path",
        ("commands", "load", "{f}"),
        file=_yaml(_HEAD + "python: not a ref\n"),
    ),
    Case("YAML", "no steps", ("commands", "load", "{f}"), file=_yaml(_HEAD + "steps: []\n")),
    Case(
        "YAML",
        "unknown step",
        ("commands", "load", "{f}"),
        file=_yaml(_HEAD + "steps:\n  - teleport: somewhere\n"),
    ),
    Case(
        "YAML",
        "bad command name",
        ("commands", "load", "{f}"),
        file=_yaml('name: "../x"\nversion: "1"\n' + _GOOD_STEP),
    ),
    Case(
        "YAML",
        "2 MB file",
        ("commands", "load", "{f}"),
        file=_yaml(_HEAD + _GOOD_STEP + "# " + "x" * 2_000_000 + "\n"),
    ),
    # -- templates -----------------------------------------------------------------------
    Case(
        "templates",
        "unknown parameter",
        ("commands", "load", "{f}"),
        file=_yaml(_HEAD + 'steps:\n  - goto: "{{ params.nope }}"\n'),
    ),
    Case(
        "templates",
        "unclosed expression",
        ("commands", "load", "{f}"),
        file=_yaml(_HEAD + 'steps:\n  - goto: "{{ params.x"\n'),
    ),
    Case(
        "templates",
        "unknown root",
        ("commands", "load", "{f}"),
        file=_yaml(_HEAD + 'steps:\n  - goto: "{{ secrets.token }}"\n'),
    ),
    Case(
        "templates",
        "unknown filter",
        ("commands", "load", "{f}"),
        file=_yaml(_HEAD + 'steps:\n  - goto: "{{ profile.name | shout }}"\n'),
    ),
    # -- schedules -----------------------------------------------------------------------
    Case(
        "schedules", "cron that does not parse", ("schedule", "add", "demo", "base", "--cron", "x")
    ),
    Case(
        "schedules",
        "negative interval",
        ("schedule", "add", "demo", "base", "--interval", "-5"),
    ),
    Case("schedules", "no schedule given", ("schedule", "add", "demo", "base")),
    Case(
        "schedules",
        "cron and interval",
        ("schedule", "add", "demo", "base", "--cron", "0 * * * *", "--interval", "60"),
    ),
    Case(
        "schedules",
        "unknown timezone",
        ("schedule", "add", "demo", "base", "--cron", "0 * * * *", "--timezone", "Mars/Base"),
    ),
    Case("schedules", "bad rrule", ("schedule", "add", "demo", "base", "--rrule", "garbage")),
    Case(
        "schedules",
        "unknown command",
        ("schedule", "add", "nosuch", "base", "--cron", "0 * * * *"),
    ),
    Case(
        "schedules",
        "schedule name '../x'",
        ("schedule", "add", "demo", "base", "--cron", "0 * * * *", "--name", "../x"),
    ),
]


def _catalogue(home: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the SQLite catalogue in `home`."""
    db = home / "catalogue.db"
    if not db.exists():
        return {}
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
        return {
            t: sorted(map(repr, conn.execute(f'select * from "{t}"').fetchall())) for t in tables
        }


def _shown(value: str, limit: int = 40) -> str:
    text = repr(value)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def _render(rows: list[tuple[Case, int, str]]) -> str:
    out = [
        "# Bad inputs: what the CLI answers",
        "",
        "Generated by `tests/cli/test_bad_inputs.py` (FLEETWRIGHT_WRITE_DOCS=1 rewrites it); the",
        "test fails when the CLI's answers and this table differ. For every row the test checks",
        "the exit code, that stderr is one line (imports: at most 20 rejected items and one line",
        "counting the rest), that there is no traceback, and that the catalogue is unchanged.",
        "Arguments longer than 40 characters are cut here; files are described, not shown.",
        "",
        "| kind | input | arguments | exit | message |",
        "|---|---|---|---|---|",
    ]
    for case, code, message in rows:
        args = " ".join(_shown(a) if a != "{f}" else "FILE" for a in case.args)
        shown = message.replace("|", "\\|")
        out.append(f"| {case.kind} | {case.what} | `{args}` | {code} | {shown} |")
    return "\n".join(out) + "\n"


def _message(err: str, path: str) -> str:
    first = err.strip().splitlines()[0] if err.strip() else ""
    first = first.replace(path, "FILE")
    first = first.removeprefix("error: ").strip()
    first = first.removeprefix("rejected ").strip()
    return first if len(first) <= 160 else first[:159] + "…"


def test_bad_inputs_table(
    prefect_api: str, home: Path, tmp_path: Path, cli: Callable[..., Any]
) -> None:
    assert len(CASES) >= 80
    assert cli("profile", "add", "base").code == 0
    assert cli("profile", "add", "Zo\u00eb").code == 0
    assert cli("proxy", "add", "px", "http://127.0.0.1:8080").code == 0
    assert cli("commands", "load").code == 0
    before = _catalogue(home)
    assert before["profiles"], "the baseline profiles are in the catalogue"
    problems: list[str] = []
    rows: list[tuple[Case, int, str]] = []
    for i, case in enumerate(CASES):
        args = list(case.args)
        path = tmp_path / "none"
        if case.file is not None:
            path = tmp_path / f"case-{i}.{'yaml' if args[0] == 'commands' else 'txt'}"
            path.write_bytes(case.file)
            args = [str(path) if a == "{f}" else a for a in args]
        r = cli(*args)
        lines = [line for line in r.err.splitlines() if line.strip()]
        label = f"{case.kind}: {case.what}"
        if r.code != case.code:
            problems.append(f"{label}: exit {r.code}, expected {case.code}: {r.err[-300:]!r}")
        if not 1 <= len(lines) <= case.max_lines:
            problems.append(f"{label}: {len(lines)} stderr lines: {r.err[:300]!r}")
        if "Traceback" in r.err + r.out:
            problems.append(f"{label}: traceback: {r.err[-300:]!r}")
        if len(r.err) > 600 * case.max_lines:
            problems.append(f"{label}: {len(r.err)} characters on stderr")
        after = _catalogue(home)
        if after != before:
            problems.append(f"{label}: the catalogue changed")
            before = after
        rows.append((case, r.code, _message(r.err, str(path))))
    assert not problems, "\n".join(problems)
    table = _render(rows)
    if os.environ.get("FLEETWRIGHT_WRITE_DOCS"):
        DOC.write_text(table, encoding="utf-8")
    assert DOC.read_text(encoding="utf-8") == table, (
        "docs/bad-inputs.md differs from what the CLI answers; "
        "run this test with FLEETWRIGHT_WRITE_DOCS=1 and review the diff"
    )
