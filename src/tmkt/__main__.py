"""`python -m tmkt` runs the command-line interface (also what torchrun launches)."""

from tmkt.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
