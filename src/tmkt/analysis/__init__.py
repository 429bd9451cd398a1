"""tmkt.analysis."""
