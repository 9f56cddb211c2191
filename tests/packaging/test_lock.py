"""requirements.lock and pyproject.toml agree: every declared requirement (with the dev
extras) is pinned in the lock at a version its range allows, every library Fleetwright
imports is declared with an upper bound, and the lock pins exact versions only."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import grimp
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
#: Stub-only packages follow their library's version; they need no bound of their own.
UNBOUNDED_OK = {"types-pyyaml", "types-psutil"}


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return [Requirement(r) for r in reqs]


def _locked() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)(\s*;.*)?", line)
        assert match, f"requirements.lock: not an exact pin: {line!r}"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_every_declared_requirement_is_locked_within_its_range() -> None:
    pins = _locked()
    for req in _declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is declared but not in requirements.lock"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {req.name}=={pins[name]}, outside {req.specifier}"
        )


def test_every_declared_requirement_has_an_upper_bound() -> None:
    for req in _declared():
        if canonicalize_name(req.name) in UNBOUNDED_OK:
            continue
        assert any(s.operator in ("<", "<=", "==", "~=") for s in req.specifier), (
            f"{req} has no upper bound"
        )


def test_every_imported_library_is_declared() -> None:
    from importlib.metadata import packages_distributions

    graph = grimp.build_graph("fleetwright", include_external_packages=True)
    imported = {m for m in graph.modules if "." not in m and m != "fleetwright"} - set(
        sys.stdlib_module_names
    )
    dists = packages_distributions()
    declared = {canonicalize_name(r.name) for r in _declared()}
    missing = {
        module: dists.get(module)
        for module in imported
        if not {canonicalize_name(d) for d in dists.get(module, [])} & declared
    }
    assert missing == {}, f"imported but not declared in pyproject.toml: {missing}"
