"""A SentencePiece-style BPE tokenizer rebuilt from a GGUF vocabulary (Gemma 3), on `tokenizers`.

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
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CONTROL, USER_DEFINED = 3, 4  # GGUF / SentencePiece token types


class Tokenizer:
    def __init__(self, backend, bos_id: int, eos_id: int):
        self.backend, self.bos_id, self.eos_id = backend, int(bos_id), int(eos_id)

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

    def save(self, path: Path) -> None:
        self.backend.save(str(path))

    @classmethod
    def load(cls, path: Path, *, bos_id: int, eos_id: int) -> Tokenizer:
        from tokenizers import Tokenizer as Backend

        return cls(Backend.from_file(str(path)), bos_id, eos_id)  # plain JSON

    def encode(self, text: str, *, add_bos: bool = True) -> np.ndarray:
        """Token ids (n,) int32, BOS first unless add_bos=False."""
        if not isinstance(text, str):
            raise TypeError(f"encode: text must be a str, got {type(text).__name__}")
        ids = self.backend.encode(text, add_special_tokens=False).ids
        return np.array(([self.bos_id] if add_bos else []) + ids, np.int32)

    def decode(self, ids) -> str:
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=False)

    def token(self, index: int) -> str:
        return self.backend.id_to_token(int(index))

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)
