"""The report: verdicts, the summary on pandas (`compare`), Markdown tables, figures, seed-matched A/B.

Reference: issue 14 (a layered package); ARCHITECTURE.md.
"""
