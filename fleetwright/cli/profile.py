"""`fleetwright profile ...`: add, list, show, edit, archive, import, export profiles."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from fleetwright.cli.output import console, err_console, print_json, print_record, print_table
from fleetwright.errors import ImportFileError, ValidationError
from fleetwright.specs import short_repr, validate_profile

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
LIST_COLUMNS = [
    ("name", "Name"),
    ("tags", "Tags"),
    ("state_mode", "Mode"),
    ("status", "Status"),
    ("proxy", "Proxy"),
    ("proxy_pool", "Pool"),
    ("timezone", "Timezone"),
    ("locale", "Locale"),
    ("state_version", "State"),
]


def _parse_viewport(value: str) -> tuple[int, int]:
    try:
        w, h = value.lower().split("x")
        return int(w), int(h)
    except ValueError:
        raise ValidationError(f"viewport {value!r} is not WIDTHxHEIGHT, e.g. 1280x800") from None


def _parse_geo(value: str) -> dict[str, float]:
    try:
        lat, lon = (float(v) for v in value.split(","))
    except ValueError:
        raise ValidationError(f"geolocation {value!r} is not LAT,LON, e.g. 52.52,13.40") from None
    return {"latitude": lat, "longitude": lon}


def _parse_headers(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        if "=" not in v:
            raise ValidationError(f"header {v!r} is not NAME=VALUE")
        k, _, val = v.partition("=")
        out[k.strip()] = val
    return out


def _fields(
    *,
    tags: list[str] | None = None,
    user_agent: str | None = None,
    viewport: str | None = None,
    locale: str | None = None,
    timezone: str | None = None,
    geo: str | None = None,
    color_scheme: str | None = None,
    headers: list[str] | None = None,
    mode: str | None = None,
    proxy: str | None = None,
    pool: str | None = None,
    policy: str | None = None,
    failover: bool | None = None,
    ip_check: str | None = None,
    country: str | None = None,
    notes: str | None = None,
) -> dict[str, Any]:
    """The spec fields the user gave (None means not given)."""
    data: dict[str, Any] = {}
    fp: dict[str, Any] = {}
    if tags is not None:
        data["tags"] = tags
    if user_agent is not None:
        fp["user_agent"] = user_agent
    if viewport is not None:
        fp["viewport_width"], fp["viewport_height"] = _parse_viewport(viewport)
    if locale is not None:
        fp["locale"] = locale
    if timezone is not None:
        fp["timezone"] = timezone
    if geo is not None:
        fp["geolocation"] = _parse_geo(geo) if geo else None
    if color_scheme is not None:
        fp["color_scheme"] = color_scheme
    if headers:
        fp["extra_headers"] = _parse_headers(headers)
    if fp:
        data["fingerprint"] = fp
    for key, value in (
        ("state_mode", mode),
        ("proxy", proxy),
        ("proxy_pool", pool),
        ("proxy_policy", policy),
        ("proxy_failover", failover),
        ("ip_check", ip_check),
        ("country", country),
        ("notes", notes),
    ):
        if value is not None:
            data[key] = value
    return data


Tag = Annotated[list[str] | None, typer.Option("--tag", "-t", help="A tag (repeatable).")]
UA = Annotated[str | None, typer.Option("--user-agent", help="User-Agent string.")]
Viewport = Annotated[str | None, typer.Option("--viewport", help="WIDTHxHEIGHT, e.g. 1280x800.")]
Locale = Annotated[str | None, typer.Option("--locale", help="BCP 47 locale, e.g. de-DE.")]
TZ = Annotated[str | None, typer.Option("--timezone", help="IANA timezone, e.g. Europe/Berlin.")]
Geo = Annotated[str | None, typer.Option("--geo", help="LAT,LON geolocation.")]
Scheme = Annotated[str | None, typer.Option("--color-scheme", help="light | dark | no-preference.")]
Header = Annotated[list[str] | None, typer.Option("--header", help="NAME=VALUE (repeatable).")]
Mode = Annotated[str | None, typer.Option("--mode", help="storage (default) | persistent.")]
ProxyOpt = Annotated[str | None, typer.Option("--proxy", help="Name of a proxy to use.")]
Pool = Annotated[str | None, typer.Option("--pool", help="Name of a proxy pool to draw from.")]
Policy = Annotated[
    str | None, typer.Option("--policy", help="sticky | round_robin | least_used | random.")
]
Failover = Annotated[
    bool | None, typer.Option("--failover/--no-failover", help="Move off a quarantined proxy.")
]
IPCheckOpt = Annotated[str | None, typer.Option("--ip-check", help="off | warn | refuse.")]
Country = Annotated[str | None, typer.Option("--country", help="Two-letter country code.")]
Notes = Annotated[str | None, typer.Option("--notes", help="Free text.")]


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Unique profile name (1–64 characters).")],
    tag: Tag = None,
    user_agent: UA = None,
    viewport: Viewport = None,
    locale: Locale = None,
    timezone: TZ = None,
    geo: Geo = None,
    color_scheme: Scheme = None,
    header: Header = None,
    mode: Mode = None,
    proxy: ProxyOpt = None,
    pool: Pool = None,
    policy: Policy = None,
    failover: Failover = None,
    ip_check: IPCheckOpt = None,
    country: Country = None,
    notes: Notes = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a profile (a BrowserProfile block and a catalogue row)."""
    from fleetwright.registry import add_profile

    data = _fields(
        tags=tag,
        user_agent=user_agent,
        viewport=viewport,
        locale=locale,
        timezone=timezone,
        geo=geo,
        color_scheme=color_scheme,
        headers=header,
        mode=mode,
        proxy=proxy,
        pool=pool,
        policy=policy,
        failover=failover,
        ip_check=ip_check,
        country=country,
        notes=notes,
    )
    spec = validate_profile({"name": name, **data}, where=f"profile {name!r}")
    record = asyncio.run(add_profile(spec, direct=True))
    if as_json:
        print_json(record)
    else:
        console.print(f"Added profile [bold]{record['name']}[/] (block {record['block_name']}).")
        if record["block_pending"]:
            err_console.print(
                "  its block is not written yet (Prefect API unreachable); "
                "`fleetwright sync` writes it"
            )


@app.command("list")
def list_(
    tag: Tag = None,
    status: Annotated[str | None, typer.Option(help="active | archived.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List profiles (all, or those with any of the tags)."""
    from fleetwright.registry import list_profiles

    if status is not None and status not in ("active", "archived"):
        raise ValidationError(f"--status {short_repr(status)} is not active or archived")
    rows = list_profiles(tags=tag or [], status=status, limit=limit)
    if as_json:
        print_json(rows)
        return
    for r in rows:
        r["timezone"] = r["fingerprint"]["timezone"]
        r["locale"] = r["fingerprint"]["locale"]
    print_table(rows, LIST_COLUMNS, title=f"{len(rows)} profiles")


@app.command("show")
def show(name: str, as_json: JsonOpt = False) -> None:
    """Show one profile in full."""
    from fleetwright.registry import get_profile

    record = get_profile(name)
    if as_json:
        print_json(record)
        return
    flat = {k: v for k, v in record.items() if k != "fingerprint"}
    flat.update({f"fingerprint.{k}": v for k, v in record["fingerprint"].items()})
    print_record(flat, title=f"profile {name}")


@app.command("edit")
def edit(
    name: str,
    add_tag: Annotated[list[str] | None, typer.Option("--add-tag", help="Add a tag.")] = None,
    remove_tag: Annotated[
        list[str] | None, typer.Option("--remove-tag", help="Remove a tag.")
    ] = None,
    user_agent: UA = None,
    viewport: Viewport = None,
    locale: Locale = None,
    timezone: TZ = None,
    geo: Geo = None,
    color_scheme: Scheme = None,
    header: Header = None,
    mode: Mode = None,
    proxy: ProxyOpt = None,
    pool: Pool = None,
    policy: Policy = None,
    failover: Failover = None,
    ip_check: IPCheckOpt = None,
    country: Country = None,
    notes: Notes = None,
    as_json: JsonOpt = False,
) -> None:
    """Change some fields of a profile; the rest stay as they are."""
    from fleetwright.registry import edit_profile, get_profile

    data = _fields(
        user_agent=user_agent,
        viewport=viewport,
        locale=locale,
        timezone=timezone,
        geo=geo,
        color_scheme=color_scheme,
        headers=header,
        mode=mode,
        proxy=proxy,
        pool=pool,
        policy=policy,
        failover=failover,
        ip_check=ip_check,
        country=country,
        notes=notes,
    )
    if add_tag or remove_tag:
        tags = set(get_profile(name)["tags"]) | set(add_tag or [])
        data["tags"] = sorted(tags - set(remove_tag or []))
    if proxy:
        data["proxy_pool"] = None
    if pool:
        data["proxy"] = None
    if not data:
        raise ValidationError("nothing to change; see `fleetwright profile edit --help`")
    record = asyncio.run(edit_profile(name, data))
    if as_json:
        print_json(record)
    else:
        console.print(f"Updated profile [bold]{name}[/].")


@app.command("archive")
def archive(name: str) -> None:
    """Archive a profile: kept with its state and history, no longer selected for runs."""
    from fleetwright.registry import archive_profile

    asyncio.run(archive_profile(name))
    console.print(f"Archived profile [bold]{name}[/].")


#: A profile import file is parsed whole (JSON); larger lists go in several files.
IMPORT_LIMIT_BYTES = 64 * 1024 * 1024


def read_import_file(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, item) pairs from a JSON file: a list of profiles or {"profiles": [...]}."""
    from fleetwright.inputs import read_user_text

    text = read_user_text(path, what="profile file", limit_bytes=IMPORT_LIMIT_BYTES)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFileError(
            f"{path}: line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})"
        ) from None
    except RecursionError:
        raise ImportFileError(f"{path}: JSON nested too deeply to be a profile list") from None
    if isinstance(data, dict) and isinstance(data.get("profiles"), list):
        data = data["profiles"]
    if not isinstance(data, list):
        raise ImportFileError(f'{path}: expected a JSON list of profiles or {{"profiles": [...]}}')
    out: list[tuple[str, dict[str, Any]]] = []
    for i, item in enumerate(data, start=1):
        name = item.get("name") if isinstance(item, dict) else None
        where = f"item {i}" + (f" ({short_repr(name)})" if name is not None else "")
        out.append((where, item))
    return out


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="JSON file: a list of profiles.")],
    as_json: JsonOpt = False,
) -> None:
    """Import profiles from JSON; bad items are reported, good ones imported, none duplicated."""
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from fleetwright.inputs import exit_code_for, report_rejections
    from fleetwright.registry import import_profiles

    items = read_import_file(path)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=as_json or not err_console.is_terminal,
    ) as progress:
        task = progress.add_task("importing", total=len(items))
        blocks = progress.add_task("blocks", total=None, visible=False)

        def block_done(n: int) -> None:
            progress.update(blocks, visible=True, description="blocks")
            progress.advance(blocks, n)

        report = asyncio.run(
            import_profiles(
                items,
                progress=lambda n: progress.advance(task, n),
                block_progress=block_done,
            )
        )
    if as_json:
        print_json(report.__dict__)
    else:
        console.print(
            f"{report.created} created, {report.updated} updated, "
            f"{report.unchanged} unchanged, {len(report.errors)} rejected."
        )
        if report.blocks_pending:
            err_console.print(
                f"  {report.blocks_pending} block(s) not written yet (the profiles are "
                "runnable); `fleetwright sync` writes them"
            )
        report_rejections(
            report.errors,
            lambda line: err_console.print(
                f"  [red]rejected[/] {escape(line)}", highlight=False, soft_wrap=True
            ),
        )
    code = exit_code_for(report.created + report.updated + report.unchanged, len(report.errors))
    if code:
        raise typer.Exit(code)


@app.command("export")
def export(
    tag: Tag = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write.")] = None,
) -> None:
    """Export profiles as JSON that `profile import` reads back."""
    from fleetwright.registry import export_profiles

    data = export_profiles(tags=tag or [])
    text = json.dumps(data, indent=2) + "\n"
    if output:
        output.write_text(text, encoding="utf-8")
        console.print(f"Exported {len(data)} profiles to {output}.")
    else:
        typer.echo(text, nl=False)


state_app = typer.Typer(no_args_is_help=True, help="A profile's saved state versions.")
app.add_typer(state_app, name="state")


@state_app.command("list")
def state_list(name: str, as_json: JsonOpt = False) -> None:
    """Saved state versions of a profile, newest first (the current one marked)."""
    from fleetwright.browser import StateStore

    rows = [
        {
            "version": v.version,
            "current": "✓" if v.current else "",
            "size": v.size_bytes,
            "run": v.run_id,
            "saved": v.created_at.isoformat(timespec="seconds"),
        }
        for v in StateStore().versions(name)
    ]
    if as_json:
        print_json(rows)
    else:
        print_table(
            rows,
            [
                ("version", "Version"),
                ("current", "Current"),
                ("size", "Bytes"),
                ("run", "Run"),
                ("saved", "Saved"),
            ],
            title=f"state of {name}",
        )


@state_app.command("rollback")
def state_rollback(name: str, version: int) -> None:
    """Make an earlier saved version current (refused while a run holds the profile)."""
    import uuid

    from fleetwright.browser import StateStore
    from fleetwright.errors import ProfileBusyError
    from fleetwright.registry import get_profile
    from fleetwright.sessions import lease
    from fleetwright.settings import get_settings

    profile_id = get_profile(name)["id"]
    holder = f"cli-rollback:{uuid.uuid4().hex[:8]}"
    if not lease.acquire(profile_id, holder, get_settings().lease_ttl):
        raise ProfileBusyError(f"profile {name!r} is in use by a run; roll back when it ends")
    try:
        StateStore().rollback(name, version)
    finally:
        lease.release(profile_id, holder)
    console.print(f"Profile [bold]{name}[/] now uses state version {version}.")


def _mount_open() -> None:
    """`profile open` / `profile close` live in their own module."""
    from fleetwright.cli import profile_open

    app.command("open")(profile_open.open_)
    app.command("close")(profile_open.close)


_mount_open()
