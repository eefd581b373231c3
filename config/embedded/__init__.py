"""The bare-machine backends the settings fall back on when DATABASE_URL or BROKER_URL is unset.

A plain package, not a Django app: the settings import it before any app is loaded (they need
the embedded PostgreSQL's URL and the filesystem broker's folders to configure Django at all).
"""
