"""Command groups of the `irob-bench` CLI; each module exposes register(subparsers)."""
