"""First-level category classifier for citizen messages: hashed features, a linear model, calibrated.

The model file (``routing/model/category.npz``) holds numbers only: hashed
feature weights, idf vectors, the temperature that calibrates the scores, the
class names (category labels) and a JSON config of numbers and ASCII keys. No
vocabulary and no message text: features are hashed, and the words shown as
the reasons for a prediction are recovered from the input's own tokens.

Features of one message (title first, then the text):

- ``word``: jieba content words (``routing.text.tokens``) of the first
  ``word_chars`` characters;
- ``char``: character 1-3-grams of the first ``char_chars`` characters, with
  punctuation, digits and spaces removed;
- ``head``: the content words of the first ``head_chars`` characters (the
  title, or the start of the message when there is none), so the subject
  line counts twice.

Each block is hashed (``HashingVectorizer``, ``alternate_sign=False``),
weighted by sublinear tf x idf, L2-normalised, and the blocks are joined and
normalised again. One linear model scores the classes (in training, the sum
of a ridge, an NB-SVM and a char-only ridge, folded into one weight matrix:
``routing.training.fit_model``); a softmax with a fitted temperature turns the
scores into probabilities (calibrated on held-out folds). ``confidence`` is the top probability; ``needs_review`` is
set below ``review_below``, the confidence above which held-out messages were
right 97 % of the time. The model knows only the 7 labelled first-level
classes: messages of the other 8 (政法, 民政, 农村农业 ...) get lower
confidence on average but not always low (docs/routing.md has the figures).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.utils import murmurhash3_32

from routing import text as T

__all__ = ["Classifier", "FeatureConfig", "Prediction", "default_model_path", "features_from_text"]

MODEL_FILE = "category.npz"
FORMAT = 1


def default_model_path() -> Path:
    """The model shipped with the package."""
    return Path(__file__).resolve().parent / "model" / MODEL_FILE


@dataclass(frozen=True)
class FeatureConfig:
    word_chars: int = 600
    char_chars: int = 1000
    char_min: int = 1
    char_max: int = 3
    head_chars: int = 25
    n_word: int = 2**18
    n_char: int = 2**19
    n_head: int = 2**17
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    # Segmented training rows have no stop words: cap their words at the share
    # of ``word_chars`` that content words take in a full text.
    seg_word_chars: int = 450

    @property
    def sizes(self) -> tuple[int, int, int]:
        return (self.n_word, self.n_char, self.n_head)

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["weights"] = list(self.weights)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "FeatureConfig":
        d = dict(d)
        d["weights"] = tuple(d["weights"])
        return cls(**d)


Features = tuple[list[str], list[str], list[str]]  # word, char, head

_NOT_LETTER = re.compile(r"[\W\d_]+")


def _char_ngrams(s: str, lo: int, hi: int) -> list[str]:
    out: list[str] = []
    n = len(s)
    for k in range(lo, hi + 1):
        out.extend([s[i : i + k] for i in range(n - k + 1)])
    return out


def _head(words: Sequence[str], nchars: int) -> list[str]:
    out, used = [], 0
    for w in words:
        if used >= nchars:
            break
        out.append(w)
        used += len(w)
    return out


def features_from_text(text: str, cfg: FeatureConfig, *, normalized: bool = False) -> Features:
    """The three feature lists of a message (``text`` = title and body joined)."""
    doc = text if normalized else T.normalize(text)
    words = T.content_tokens(T.cut(doc[: cfg.word_chars], normalized=True))
    chars = _char_ngrams(_NOT_LETTER.sub("", doc[: cfg.char_chars]), cfg.char_min, cfg.char_max)
    return words, chars, _head(words, cfg.head_chars)


def features_from_tokens(tokens: Sequence[str], cfg: FeatureConfig) -> Features:
    """The same features for a training row given only as jieba tokens without stop words."""
    words = T.content_tokens(T.normalize(t) for t in tokens)
    capped = _head(words, cfg.seg_word_chars)
    joined = _NOT_LETTER.sub("", "".join(words))[: cfg.char_chars]
    return capped, _char_ngrams(joined, cfg.char_min, cfg.char_max), _head(words, cfg.head_chars)


def _identity(x):
    return x


def hashers(cfg: FeatureConfig) -> tuple[HashingVectorizer, ...]:
    return tuple(
        HashingVectorizer(analyzer=_identity, n_features=n, alternate_sign=False, norm=None, dtype=np.float64)
        for n in cfg.sizes
    )


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    top3: list[tuple[str, float]]
    top_words: dict[str, list[str]]
    version: str
    probabilities: dict[str, float] = field(default_factory=dict)
    needs_review: bool = True


class Classifier:
    """A loaded category model. ``predict`` is thread-safe (the model is read-only)."""

    def __init__(
        self,
        *,
        classes: Sequence[str],
        coef: np.ndarray,
        intercept: np.ndarray,
        idf: Sequence[np.ndarray],
        temperature: float,
        cfg: FeatureConfig,
        review_below: float = 0.5,
        version: str = "unsaved",
        meta: dict | None = None,
    ):
        self.classes = list(classes)
        # Stored as (n_features, n_classes) so the weights of a message's few
        # features are one contiguous gather.
        self.coef = np.ascontiguousarray(coef, dtype=np.float32)
        self.intercept = np.asarray(intercept, dtype=np.float32)
        self.idf = [np.asarray(v, dtype=np.float32) for v in idf]
        self.temperature = float(temperature)
        self.cfg = cfg
        self.review_below = float(review_below)
        self.version = version
        self.meta = meta or {}
        self._offsets = np.cumsum([0, *cfg.sizes])[:-1]
        if any(n & (n - 1) for n in cfg.sizes):
            raise ValueError("feature block sizes must be powers of two")
        if self.coef.shape != (sum(cfg.sizes), len(self.classes)):
            raise ValueError(f"model weights have shape {self.coef.shape}, config wants {sum(cfg.sizes)}")

    # ---- persistence ----------------------------------------------------------------

    def save(self, path: Path) -> str:
        """Write the model file (compressed .npz, numbers and class names only); returns its version."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {
            "format": FORMAT,
            "features": self.cfg.to_json(),
            "temperature": self.temperature,
            "review_below": self.review_below,
            "meta": self.meta,
        }
        # float16 halves the file; the scores move by < 1e-3, far below any decision margin.
        coef16 = self.coef.astype(np.float16)
        with path.open("wb") as fh:
            np.savez_compressed(
                fh,
                classes=np.array(self.classes, dtype=str),
                coef=coef16,
                intercept=self.intercept.astype(np.float32),
                idf_word=self.idf[0].astype(np.float16),
                idf_char=self.idf[1].astype(np.float16),
                idf_head=self.idf[2].astype(np.float16),
                config=np.array(json.dumps(config, ensure_ascii=True, sort_keys=True)),
            )
        return _file_version(path)

    @classmethod
    def load(cls, path: Path | str | None = None) -> "Classifier":
        path = Path(path) if path is not None else default_model_path()
        with np.load(path, allow_pickle=False) as z:
            config = json.loads(str(z["config"]))
            if config.get("format") != FORMAT:
                raise ValueError(f"{path}: unsupported model format {config.get('format')!r}")
            return cls(
                classes=[str(c) for c in z["classes"]],
                coef=z["coef"].astype(np.float32),
                intercept=z["intercept"],
                idf=[z["idf_word"], z["idf_char"], z["idf_head"]],
                temperature=config["temperature"],
                cfg=FeatureConfig.from_json(config["features"]),
                review_below=config.get("review_below", 0.5),
                version=_file_version(path),
                meta=config.get("meta", {}),
            )

    # ---- scoring --------------------------------------------------------------------

    def _vectorize(self, feats: Features) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[int, int]]]:
        """Global column indices and tf-idf values of one message, and each word's (word, head) column.

        Hashing is scikit-learn's murmurhash, as in the ``HashingVectorizer`` of
        training (a test checks the columns agree). Every distinct string is
        hashed once; its column in each block is the hash modulo the block size.
        """
        word_cols: dict[str, tuple[int, int]] = {}
        idx_parts, val_parts = [], []
        for block, (items, size) in enumerate(zip(feats, self.cfg.sizes, strict=True)):
            if not items:
                continue
            counts = Counter(items)
            # |murmurhash3_32(utf-8)| % n is FeatureHasher's column for n a power of
            # two (its special case for h = -2**31 gives 0, as does 2**31 % n).
            cols = np.abs(np.fromiter(map(murmurhash3_32, counts), np.int64, len(counts))) % size
            tf = np.fromiter(counts.values(), np.float64, len(counts))
            if block == 0:
                word_cols = {k: (c, -1) for k, c in zip(counts, cols.tolist(), strict=True)}
            elif block == 2:
                for k, c in zip(counts, cols.tolist(), strict=True):
                    word_cols[k] = (word_cols.get(k, (-1, -1))[0], c)
            if len(cols) > 1:
                cols, inv = np.unique(cols, return_inverse=True)  # colliding features add up, as in training
                tf = np.bincount(inv, weights=tf)
            vals = (1.0 + np.log(tf)) * self.idf[block][cols]  # sublinear tf x idf
            norm = float(np.sqrt(vals @ vals))
            if norm == 0.0:
                continue
            idx_parts.append(cols + self._offsets[block])
            val_parts.append(vals * (self.cfg.weights[block] / norm))
        if not idx_parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), word_cols
        idx = np.concatenate(idx_parts)
        val = np.concatenate(val_parts).astype(np.float32)
        val /= np.float32(np.sqrt(val @ val))
        return idx, val, word_cols

    def _features(self, text: str, title: str) -> Features:
        # Only the first ``char_chars`` characters are read (``word_chars`` <= that):
        # cap the raw input before normalising so a 50,000-character paste costs no more.
        raw = _join(title, text)[: self.cfg.char_chars + self.cfg.char_chars // 5]
        return features_from_text(raw, self.cfg)

    def scores(self, text: str, title: str = "") -> np.ndarray:
        """The raw one-vs-rest scores of every class."""
        idx, val, _ = self._vectorize(self._features(text, title))
        return val @ self.coef[idx] + self.intercept

    def _probabilities(self, s: np.ndarray) -> np.ndarray:
        z = (s - s.max()) / self.temperature
        e = np.exp(z)
        return e / e.sum()

    def predict(self, text: str, title: str = "") -> Prediction:
        """Category of a message; ``text`` is the body, ``title`` the subject line if there is one."""
        feats = self._features(text or "", title or "")
        idx, val, word_cols = self._vectorize(feats)
        w = self.coef[idx]  # (n_features_in_message, n_classes)
        s = val @ w + self.intercept
        p = self._probabilities(s)
        order = np.argsort(-p, kind="stable")
        top = [int(k) for k in order[:3]]
        # No usable feature at all (empty, emoji only, digits only): the scores are
        # the intercepts alone, which say nothing about this message.
        conf = float(p[top[0]]) if len(idx) else 0.0
        return Prediction(
            label=self.classes[top[0]],
            confidence=conf,
            top3=[(self.classes[k], float(p[k])) for k in top],
            top_words=self._top_words(word_cols, idx, val, w, top),
            version=self.version,
            probabilities={c: float(v) for c, v in zip(self.classes, p, strict=True)},
            needs_review=conf < self.review_below,
        )

    def _top_words(self, word_cols, idx, val, w, top: list[int], n: int = 5) -> dict[str, list[str]]:
        """For each of the top classes, the input's own words whose features pushed it up most.

        A word's push is the sum over its word-block and head-block features of
        (feature value x class weight); the words come from the message, never
        from the model.
        """
        if not word_cols or not len(idx):
            return {self.classes[k]: [] for k in top}
        words = list(word_cols)
        pairs = np.array(list(word_cols.values()), dtype=np.int64)  # (n_words, 2): word, head column
        offsets = np.array([self._offsets[0], self._offsets[2]], dtype=np.int64)
        wanted = np.where(pairs >= 0, pairs + offsets, -1)
        # idx is sorted: blocks in order, each block's columns sorted by np.unique
        pos = np.clip(np.searchsorted(idx, wanted), 0, len(idx) - 1)
        found = (idx[pos] == wanted) & (wanted >= 0)
        contrib = val[:, None] * w  # (n_features, n_classes)
        per_word = np.where(found[:, :, None], contrib[pos], 0.0).sum(axis=1)  # (n_words, n_classes)
        out = {}
        for k in top:
            col = per_word[:, k]
            best = np.argsort(-col, kind="stable")[:n]
            out[self.classes[k]] = [words[i] for i in best if col[i] > 0]
        return out


def _join(title: str, text: str) -> str:
    title = (title or "").strip()
    text = text or ""
    return f"{title} {text}" if title else text


def _file_version(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


_default: Classifier | None = None
_default_lock = threading.Lock()


def default_classifier() -> Classifier:
    """The shipped model, loaded once per process."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Classifier.load(default_model_path())
    return _default
