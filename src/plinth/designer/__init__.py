"""The collaborative designer: drafts as CRDT documents, co-edited live over WebSocket."""
