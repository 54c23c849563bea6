"""Analyses of a model's computation used by experiments and by proofs_check."""
