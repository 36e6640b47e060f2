"""Storage: the atomic writer and checksummed caches (`files`), run folders and reading them back (`results`), the run
record and code digests (`meta`).

Reference: issue 14 (a layered package); ARCHITECTURE.md.
"""
