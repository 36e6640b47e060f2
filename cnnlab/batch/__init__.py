"""Batches: plan, skip key and the scheduling loop (`reproduce`), the Ray engine its runs execute on, measured code
equivalences.

Reference: issue 14 (a layered package); ARCHITECTURE.md.
"""
