"""tmkt.train."""
