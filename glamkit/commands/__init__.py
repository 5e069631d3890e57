"""The subcommands of `glamkit`, one module per command group; each has `register(subparsers)` and imports nothing
heavy at module level (glamkit/cli.py lists them in COMMAND_MODULES)."""
