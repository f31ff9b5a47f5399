"""PodBoard's SQLite backend: Django's, with writers that queue in-process (see ``base``)."""
