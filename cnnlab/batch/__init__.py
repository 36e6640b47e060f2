"""Batches: plan, skip key and execution (`reproduce`), the warm worker process, measured code equivalences.

Reference: issue 14 (a layered package); ARCHITECTURE.md.
"""
