"""tmkt.datasets."""
