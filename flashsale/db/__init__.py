"""Database plumbing: the embedded server, connections and migrations. Nothing here knows about orders."""
