"""tmkt.snn."""
