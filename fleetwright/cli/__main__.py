"""`python -m fleetwright.cli`: the `fleetwright` command (for children started by `up`)."""

from fleetwright.cli.main import main

main()
