"""Experiment configs: the schema of frozen dataclasses (`schema`), experiments with extends, variants, profiles and
overrides (`experiment`), Keras names checked by their signatures (`keras_specs`).

Reference: issue 14 (a layered package); ARCHITECTURE.md.
"""
