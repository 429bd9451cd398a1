"""tmkt.models."""
