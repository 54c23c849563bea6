"""Strings and prompts on which squash_sim's Gemma 3 270M is compared with Hugging Face
transformers (the oracle). Shared by the tests and tests/fixtures/make_gemma_oracle.py."""

TOKENIZER_STRINGS = [
    "How many ones are in the following sequence? 1111",
    "1 1 1",
    "1111111111111111111111111111111111",
    "Hello, world!\n\nNew  paragraph   with\tspaces",
    "Can you copy the following number? 123,456,789",
    "Q: What is the capital of France? A: Paris",
    "naïve café — 東京 🙂 é, Ελληνικά, русский, العربية",
    "   leading spaces and trailing   ",
    "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
    "a\n\n\nb\r\nc",
    "x" * 50,
    "mixed \n \n  \n",
    "def f(x):\n    return x ** 2  # comment",
    "\u0000\u0001 control bytes \u007f",
    "",
]

LOGIT_PROMPTS = [
    "How many ones are in the following sequence? " + "1" * 40,
    "Q: What is the capital of France? A:",
    "Can you copy the following number? 123,456,789,012",
    # Longer than the 512-token sliding window: the local layers' masks matter.
    "The quick brown fox jumps over the lazy dog. " * 60 + "The",
]
