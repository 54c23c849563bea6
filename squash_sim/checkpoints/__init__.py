"""Reading real checkpoints into squash_sim's plain parameter pytrees (never executing code)."""
