"""Commands: named, versioned automations (YAML steps or Python functions) and their runner."""

from fleetwright.commands.context import CommandContext, CommandResult, Integrations, StepOutcome
from fleetwright.commands.loader import (
    LoadReport,
    default_command_dirs,
    get_command,
    list_commands,
    load_commands,
)
from fleetwright.commands.models import ACTIONS, CommandSpec, ParamSpec, Step, TraceMode
from fleetwright.commands.params import validate_params
from fleetwright.commands.parsing import parse_command, read_command_file
from fleetwright.commands.plugins import ENTRY_POINT_GROUP, resolve_python_command
from fleetwright.commands.runner import run_steps
from fleetwright.commands.templating import render, render_value

__all__ = [
    "ACTIONS",
    "ENTRY_POINT_GROUP",
    "CommandContext",
    "CommandResult",
    "CommandSpec",
    "Integrations",
    "LoadReport",
    "ParamSpec",
    "Step",
    "StepOutcome",
    "TraceMode",
    "default_command_dirs",
    "get_command",
    "list_commands",
    "load_commands",
    "parse_command",
    "read_command_file",
    "render",
    "render_value",
    "resolve_python_command",
    "run_steps",
    "validate_params",
]
