"""One module per ``rca`` subcommand; each exposes ``register(subparsers)``."""
