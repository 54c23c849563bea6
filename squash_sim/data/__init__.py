"""Data shipped with the package (the capital-question set)."""
