"""tmkt.static."""
