"""proofs_check: the formal results of "Transformers need glasses!" as numerical checks with teeth.

Each result is a module in proofs_check.claims named after it (theory.md §2). The runner
(`python -m proofs_check`) evaluates every claim over Hypothesis-drawn instances, shrinks any
counterexample, and writes a table and JSON.
"""
