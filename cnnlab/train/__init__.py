"""Training: the one run path (`runner`), phases, generator sampling, precision, crash-safe backups, resume, cached
features.

Reference: issue 14 (a layered package); ARCHITECTURE.md.
"""
