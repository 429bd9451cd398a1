"""One reader per event file format; ``tmkt.events.io`` dispatches on the file extension."""
