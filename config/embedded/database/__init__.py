"""The database ENGINE of the embedded mode: the outbox's backend, starting the server when first needed."""
