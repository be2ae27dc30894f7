"""The measuring rig of the peer benches: server processes, throw-away databases, load."""
