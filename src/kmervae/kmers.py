"""The k-mer profile contract shared by every stage.

* Bases are coded A=0, C=1, G=2, T=3, so the integer code of a k-mer (base 4, first
  base most significant) sorts exactly like the k-mer's string.
* A k-mer and its reverse complement are one *canonical* k-mer: the lexicographically
  smaller of the two. A group's columns are its canonical k-mers in lexicographic order.
* Groups are stored in descending k (default 6, 5, 4, 3, 2, 1 = 2080 + 512 + 136 + 32 +
  10 + 2 = 2772 columns). A :class:`Layout` says which groups a matrix holds and where.
* Frequencies divide each group by its own total; the model input is the per-group
  centred log-ratio (CLR) of the frequencies plus a Jeffreys pseudocount 0.5 / width.

The transforms here accept numpy arrays and torch tensors alike (both understand
``axis=`` and ``keepdims=``), so training, embedding and evaluation share one
implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import KmervaeError

BASES = "ACGT"
DEFAULT_KS: tuple[int, ...] = (6, 5, 4, 3, 2, 1)
MAX_K = 7


def reverse_complement_code(code: np.ndarray | int, k: int) -> np.ndarray | int:
    """Code of the reverse complement of the k-mer(s) with the given code(s)."""
    code = np.asarray(code, dtype=np.int64)
    rc = np.zeros_like(code)
    for _ in range(k):
        rc = (rc << 2) | (3 - (code & 3))
        code = code >> 2
    return rc


@lru_cache(maxsize=None)
def canonical_index(k: int) -> np.ndarray:
    """Map every k-mer code (0 .. 4**k - 1) to its canonical column within group k.

    Returns an int64 array of length 4**k; equal values for a k-mer and its reverse
    complement.
    """
    if not 1 <= k <= MAX_K:
        raise KmervaeError(f"k must be between 1 and {MAX_K}, got {k}")
    codes = np.arange(4**k, dtype=np.int64)
    canonical = np.minimum(codes, reverse_complement_code(codes, k))
    _, column = np.unique(canonical, return_inverse=True)
    column = column.astype(np.int64)
    column.setflags(write=False)
    return column


def group_width(k: int) -> int:
    """Number of canonical k-mers of length k (2080 for k=6, 8192 for k=7)."""
    return int(canonical_index(k).max()) + 1


def decode(code: int, k: int) -> str:
    return "".join(BASES[(code >> (2 * (k - 1 - i))) & 3] for i in range(k))


@lru_cache(maxsize=None)
def canonical_kmers(k: int) -> tuple[str, ...]:
    """The canonical k-mers of group k, in column order (lexicographic)."""
    index = canonical_index(k)
    first_code = np.full(group_width(k), -1, dtype=np.int64)
    # the smallest code mapping to each column is the canonical k-mer itself
    for code in range(4**k - 1, -1, -1):
        first_code[index[code]] = code
    return tuple(decode(int(c), k) for c in first_code)


@dataclass(frozen=True)
class Group:
    k: int
    start: int
    stop: int

    @property
    def width(self) -> int:
        return self.stop - self.start

    @property
    def name(self) -> str:
        return f"{self.k}mer"


@dataclass(frozen=True)
class Layout:
    """Which k-mer groups a matrix holds, in column order."""

    ks: tuple[int, ...] = DEFAULT_KS

    def __post_init__(self):
        if not self.ks or len(set(self.ks)) != len(self.ks):
            raise KmervaeError(f"k-mer groups must be distinct and non-empty, got {list(self.ks)}")
        for k in self.ks:
            group_width(k)  # validates k

    @classmethod
    def parse(cls, spec: str | list[int] | tuple[int, ...]) -> "Layout":
        """Parse ``"6..1"``, ``"7..1"``, ``"5,4,3"`` or a list of ints (order is kept)."""
        if isinstance(spec, (list, tuple)):
            return cls(tuple(int(k) for k in spec))
        text = str(spec).strip()
        try:
            if ".." in text:
                hi, lo = (int(x) for x in text.split(".."))
                step = -1 if hi >= lo else 1
                return cls(tuple(range(hi, lo + step, step)))
            return cls(tuple(int(x) for x in text.split(",")))
        except ValueError:
            raise KmervaeError(f"cannot read k-mer groups {spec!r}: expected e.g. '6..1' or '6,5,4'") from None

    @property
    def groups(self) -> tuple[Group, ...]:
        out, start = [], 0
        for k in self.ks:
            w = group_width(k)
            out.append(Group(k, start, start + w))
            start += w
        return tuple(out)

    @property
    def width(self) -> int:
        return sum(group_width(k) for k in self.ks)

    def group(self, k: int) -> Group:
        for g in self.groups:
            if g.k == k:
                return g
        raise KmervaeError(f"no {k}-mer group in layout {self.describe()}")

    def describe(self) -> str:
        return "+".join(f"{k}-mers" for k in self.ks)

    def columns_for(self, ks: tuple[int, ...] | list[int]) -> np.ndarray:
        """Column indices (into a matrix of this layout) of the groups ``ks``, in that order."""
        missing = [k for k in ks if k not in self.ks]
        if missing:
            raise KmervaeError(
                f"the data holds {self.describe()} but {', '.join(f'{k}-mers' for k in missing)} "
                "are needed"
            )
        return np.concatenate([np.arange(self.group(k).start, self.group(k).stop) for k in ks])

    def column_names(self) -> list[str]:
        return [kmer for k in self.ks for kmer in canonical_kmers(k)]

    def to_attrs(self) -> list[dict]:
        return [{"k": g.k, "start": g.start, "stop": g.stop, "width": g.width} for g in self.groups]

    @classmethod
    def from_attrs(cls, groups: list[dict]) -> "Layout":
        layout = cls(tuple(int(g["k"]) for g in groups))
        if layout.to_attrs() != [dict(g) for g in groups]:
            raise KmervaeError(f"store column groups {groups} do not match the k-mer contract")
        return layout


def jeffreys_pseudocount(width: int) -> float:
    """Pseudocount added to a group's frequencies before the log: 0.5 / group width."""
    return 0.5 / width


def frequencies(counts, layout: Layout):
    """Divide each group by its own row total (all-zero rows stay zero).

    Works on numpy arrays and torch tensors; integer input is converted to float32.
    """
    x = _as_float(counts)
    parts = []
    for g in layout.groups:
        block = x[:, g.start : g.stop]
        total = block.sum(axis=1, keepdims=True)
        parts.append(block / _where_zero(total, 1.0))
    return _concat(parts, x)


def clr(freq, layout: Layout):
    """Per-group CLR of frequencies with the Jeffreys pseudocount (the model's input space)."""
    x = _as_float(freq)
    parts = []
    for g in layout.groups:
        logs = (x[:, g.start : g.stop] + jeffreys_pseudocount(g.width)).log() if _is_torch(x) else np.log(
            x[:, g.start : g.stop] + jeffreys_pseudocount(g.width)
        )
        parts.append(logs - logs.mean(axis=1, keepdims=True))
    return _concat(parts, x)


def counts_to_clr(counts, layout: Layout, out=None):
    """Counts (or frequencies) → per-group CLR of the frequencies with the Jeffreys pseudocount.

    Equal to ``clr(frequencies(counts))`` but without the divide: per row and group,
    log(c/t + p) − mean(log(c/t + p)) = log(c + p·t) − mean(log(c + p·t)) because log t
    cancels in the centring. One add and one in-place log per group: this is the model's
    input transform, run on every training batch. Rows whose group is all zero give 0.

    Torch counts (integer or float) are first copied into ``out`` as float32 and
    transformed there in place: no float copy of the batch, no concatenation (the same
    numbers as converting first). ``out``: a float32 array or tensor (n × width) to write
    into, e.g. a slice of a wider model input.
    """
    if _is_torch(counts):
        out = _empty_float(counts) if out is None else out
        out.copy_(counts)
        for g in layout.groups:
            logs = out[:, g.start : g.stop]
            shift = _where_zero(logs.sum(axis=1, keepdims=True), 1.0) * jeffreys_pseudocount(g.width)
            logs.add_(shift).log_()
            logs -= logs.mean(axis=1, keepdims=True)
        return out
    x = _as_float(counts)
    out = np.empty_like(x) if out is None else out
    for g in layout.groups:
        block = x[:, g.start : g.stop]
        shift = _where_zero(block.sum(axis=1, keepdims=True), 1.0) * jeffreys_pseudocount(g.width)
        logs = _log_of_sum_into(block, shift, out[:, g.start : g.stop])
        logs -= logs.mean(axis=1, keepdims=True)
    return out


def gc_fraction(matrix, layout: Layout):
    """GC fraction per row from the 1-mer group (column C = C/G)."""
    g = layout.group(1)
    x = _as_float(matrix)
    block = x[:, g.start : g.stop]
    total = block.sum(axis=1)
    return block[:, 1] / _where_zero(total, 1.0)


# -- numpy/torch duality ---------------------------------------------------------------


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def _as_float(x):
    if _is_torch(x):
        return x if x.is_floating_point() else x.float()
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)


def _where_zero(total, fill: float):
    if _is_torch(total):
        return total.masked_fill(total == 0, fill)
    return np.where(total == 0, fill, total)


def _empty_float(x):
    """An uninitialised float array shaped like ``x``: numpy or torch as ``x``, float32 for integers."""
    if _is_torch(x):
        import torch

        kind = x.dtype if x.is_floating_point() else torch.float32
        return torch.empty(x.shape, dtype=kind, device=x.device)
    return np.empty_like(x)


def _log_of_sum_into(a, b, out):
    """out = log(a + b), in place (numpy or torch); returns ``out``."""
    if _is_torch(a):
        import torch

        return torch.add(a, b, out=out).log_()
    np.add(a, b, out=out)
    return np.log(out, out=out)


def _concat(parts, like):
    if _is_torch(like):
        import torch

        return torch.cat(parts, dim=1)
    return np.concatenate(parts, axis=1)
