"""Command-line interface: `tmkt train | eval | inspect | experiment`."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Entry point placeholder until the trainer lands."""
    raise SystemExit("tmkt: CLI not implemented yet")
