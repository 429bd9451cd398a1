"""tmkt.transfer."""
