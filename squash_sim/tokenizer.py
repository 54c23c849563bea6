"""Tokenizers rebuilt from a GGUF vocabulary, on `tokenizers`: SentencePiece-style BPE (Gemma 3,
`from_vocabulary`) and GPT-2-style byte-level BPE (SmolLM2 and most Llama-family files,
`from_byte_level`).

Why `tokenizers` and not hand-written BPE: it is the maintained Rust implementation of exactly this
model (BPE with byte fallback), fast on 2,000-token prompts, and serialises to plain JSON, which we
cache and read back without executing anything.

How the GGUF vocabulary becomes a tokenizer (the file stores tokens, types and scores, no merges):
* spaces are written "▁" (a normalizer replaces " " by "▁"; no prefix space is added);
* a token made only of spaces (user-defined, ids 138…) is stored as real spaces in the file: it
  is respelled "▁"·len so the merges can build it;
* merges are derived from the vocabulary in vocabulary order: token t of index r contributes the
  merge (a, b) for every split t = a + b with a and b in the vocabulary, ranked by r (earlier =
  applied first), longer left part first within one token. Gemma's scores do not follow the merge
  order; the vocabulary order does;
* bytes the vocabulary lacks fall back to the <0xNN> tokens;
* control tokens (type 3: <bos>, <start_of_turn>, …) are special and matched whole, user-defined
  ones (type 4: "\\n", "\\n\\n", …) are matched whole as llama.cpp does;
* encode() prepends BOS (the file's add_bos_token).

Digits are single tokens and a space is its own token, so "1 1 1" and "111" are different
experiments (five tokens against three).

Byte-level BPE (tokenizer.ggml.model = "gpt2"): the file stores the vocabulary in GPT-2's byte
alphabet ("Ġ" for a space) and the merges, so nothing is derived: the bytes of the text are
respelled in that alphabet after GPT-2's split regex (ByteLevel pre-tokenizer), then merged.
Control tokens (<|endoftext|>, <|im_start|>, …) are matched whole. Files whose `tokenizer.ggml.pre`
names a known split regex (llama3, qwen2, …) get that regex, as llama.cpp and transformers do;
an unknown name is an error rather than a silent mis-split. BOS is prepended only if the file says
so (add_bos_token; SmolLM2: no).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CONTROL, USER_DEFINED = 3, 4  # GGUF / SentencePiece token types


# tokenizer.ggml.pre → the split regex before byte-level BPE. "gpt2"-like names use GPT-2's own
# (the ByteLevel pre-tokenizer's); the Llama 3 one splits digits in runs of at most three.
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
BYTE_LEVEL_SPLITS = {"gpt2": None, "default": None, "smollm": None, "llama3": _LLAMA3_SPLIT,
                     "llama-bpe": _LLAMA3_SPLIT, "llama-v3": _LLAMA3_SPLIT}


class Tokenizer:
    def __init__(self, backend, bos_id: int, eos_id: int, add_bos: bool = True):
        self.backend, self.bos_id, self.eos_id = backend, int(bos_id), int(eos_id)
        self.add_bos = bool(add_bos)  # the file's add_bos_token: what encode() does by default

    @classmethod
    def from_vocabulary(cls, tokens: list[str], token_types: list[int], *, bos_id: int,
                        eos_id: int, unk_id: int) -> Tokenizer:
        from tokenizers import AddedToken, decoders, normalizers
        from tokenizers import Tokenizer as Backend
        from tokenizers.models import BPE

        pieces = ["▁" * len(t) if t and t.strip(" ") == "" else t for t in tokens]
        vocab: dict[str, int] = {}
        for index, piece in enumerate(pieces):
            vocab.setdefault(piece, index)  # first spelling wins
        merges = []
        for rank, piece in enumerate(pieces):
            if vocab[piece] != rank:
                continue
            for cut in range(len(piece) - 1, 0, -1):  # longer left part first
                left, right = piece[:cut], piece[cut:]
                if left in vocab and right in vocab:
                    merges.append((left, right))
        backend = Backend(BPE(vocab=vocab, merges=merges, unk_token=pieces[unk_id],
                              fuse_unk=True, byte_fallback=True))
        backend.normalizer = normalizers.Replace(" ", "▁")
        backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                             decoders.Fuse()])
        backend.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                    for t, kind in zip(pieces, token_types, strict=True)
                                    if kind == CONTROL])
        backend.add_tokens([AddedToken(t, special=False, normalized=False)
                            for t, kind in zip(pieces, token_types, strict=True)
                            if kind == USER_DEFINED])
        return cls(backend, bos_id, eos_id)

    @classmethod
    def from_byte_level(cls, tokens: list[str], merges: list[str], token_types: list[int], *,
                        bos_id: int, eos_id: int, add_bos: bool, pre: str = "gpt2") -> Tokenizer:
        """GPT-2-style byte-level BPE from a GGUF's tokens (byte alphabet) and merges ("a b")."""
        from tokenizers import AddedToken, Regex, decoders, pre_tokenizers
        from tokenizers import Tokenizer as Backend
        from tokenizers.models import BPE

        if pre not in BYTE_LEVEL_SPLITS:
            raise ValueError(f"byte-level tokenizer: pre-tokenizer {pre!r} is not supported; "
                             f"supported: {sorted(BYTE_LEVEL_SPLITS)}")
        vocab = {token: index for index, token in enumerate(tokens)}
        pairs = [tuple(merge.split(" ", 1)) for merge in merges]
        backend = Backend(BPE(vocab=vocab, merges=pairs))
        split = BYTE_LEVEL_SPLITS[pre]
        if split is None:
            backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        else:
            backend.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(split), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        backend.decoder = decoders.ByteLevel()
        backend.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                    for t, kind in zip(tokens, token_types, strict=True)
                                    if kind == CONTROL])
        return cls(backend, bos_id, eos_id, add_bos)

    def save(self, path: Path) -> None:
        self.backend.save(str(path))

    @classmethod
    def load(cls, path: Path, *, bos_id: int, eos_id: int, add_bos: bool = True) -> Tokenizer:
        from tokenizers import Tokenizer as Backend

        return cls(Backend.from_file(str(path)), bos_id, eos_id, add_bos)  # plain JSON

    def encode(self, text: str, *, add_bos: bool | None = None) -> np.ndarray:
        """Token ids (n,) int32, BOS first if add_bos (None: as the checkpoint says)."""
        if not isinstance(text, str):
            raise TypeError(f"encode: text must be a str, got {type(text).__name__}")
        if add_bos is not None and not isinstance(add_bos, bool):
            raise TypeError(f"encode: add_bos must be a bool or None, got {add_bos!r}")
        ids = self.backend.encode(text, add_special_tokens=False).ids
        bos = self.add_bos if add_bos is None else add_bos
        return np.array(([self.bos_id] if bos else []) + ids, np.int32)

    def decode(self, ids) -> str:
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=False)

    def token(self, index: int) -> str:
        return self.backend.id_to_token(int(index))

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)
