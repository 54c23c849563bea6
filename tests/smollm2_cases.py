"""Strings and prompts on which squash_sim's SmolLM2-135M is compared with Hugging Face
transformers (the oracle). Shared by the tests and tests/fixtures/make_smollm2_oracle.py."""

from gemma_cases import TOKENIZER_STRINGS as _SHARED

TOKENIZER_STRINGS = [s for s in _SHARED if "<start_of_turn>" not in s] + [
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "1" * 300,
    "12,345,678,901 and 3.14159",
    "Tab\tand\u00a0nbsp ÿþ\u200b zero width",
    "don't won't it's I'm we'll they'd",
    " 1 1 1 1 1 0 1",
]

LOGIT_PROMPTS = [
    "Q: What is the capital of France? A:",
    # Long (> 500 tokens) and global attention everywhere: every position sees every earlier one.
    "How many ones are in the following sequence? " + "1" * 120 + "\n"
    + "The quick brown fox jumps over the lazy dog. " * 40 + "The",
]
