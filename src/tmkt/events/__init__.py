"""tmkt.events."""
