"""Database access: connection set-up and the embedded default server (:mod:`.embedded`)."""
