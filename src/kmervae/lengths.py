"""The contig lengths a model was trained on, and the checks embedding makes against them.

`kmervae train` records the lengths of the training split in the model's weight files
(safetensors metadata ``training_lengths``, JSON): ``n``, ``min``, ``max``, ``quantiles``
(data values at :data:`QUANTILES`) and ``selected_min_length``, the dataset's selection
threshold (``provenance.min_length``, written by `kmervae select`) when it records one.
The *training floor* is that threshold, else the training minimum: a model of contigs
selected at >= 1000 bp has floor 1000 even if its shortest training contig is 1003 bp.

Embedding checks every record against it (:class:`LengthGuard`):

* ``--min-length`` (default: the floor for FASTA input, 0 for stores): records shorter
  are *skipped*, not embedded, and counted in one warning. A k-mer profile of a contig
  much shorter than the training contigs is noise the model never saw; users of a
  >= 1 kb model expect such contigs to be left out, as the training data left them out.
  Stores keep every row by default: they are selected by length already (`kmervae
  select`), and the workflow embeds every test set with every model on purpose (models
  of one threshold on test sets of another).
* Records kept but shorter than the floor (store rows, or ``--min-length`` below the
  floor) and records longer than :data:`FAR_ABOVE` times the longest training contig are
  embedded, and counted in a warning each.

A model without ``training_lengths`` (trained by an earlier kmervae) has no floor: only an
explicit ``--min-length`` skips records.
"""

from __future__ import annotations

import json
import logging
import math
import os

import numpy as np

from .errors import KmervaeError

log = logging.getLogger(__name__)

#: the quantiles of the training lengths recorded with a model
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
#: records longer than this many times the longest training contig are counted in a warning
FAR_ABOVE = 2.0
#: the safetensors metadata key of the training lengths
METADATA_KEY = "training_lengths"


def training_lengths(path: str | os.PathLike, split: str) -> dict:
    """The length summary of one split of a dataset store (read chunk by chunk)."""
    from .io.store import KmerStore

    store = KmerStore(path)
    code = store.split_names().index(split)
    parts = []
    for a, b in store.chunks(max(store.chunk_rows, 1 << 20)):
        parts.append(np.asarray(store.lengths(a, b))[np.asarray(store.read("split", a, b)) == code])
    lengths = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    if len(lengths) == 0:
        raise KmervaeError(f"{path}: the {split} split is empty")
    quantiles = np.quantile(lengths, QUANTILES, method="inverted_cdf")
    selected = (store.attrs.get("provenance") or {}).get("min_length")
    return {
        "split": split,
        "n": int(len(lengths)),
        "min": int(lengths.min()),
        "max": int(lengths.max()),
        "quantiles": {f"{q:g}": int(v) for q, v in zip(QUANTILES, quantiles)},
        "selected_min_length": int(selected) if selected is not None else None,
    }


def floor(summary: dict) -> int:
    """The shortest length the training data admitted: its selection threshold, else its minimum."""
    selected = summary.get("selected_min_length")
    return int(selected) if selected is not None else int(summary["min"])


def describe(summary: dict) -> str:
    """One line: n, range, median and the selection threshold of the training lengths."""
    selected = summary.get("selected_min_length")
    return (
        f"{summary['n']:,} contigs of {summary['min']:,}-{summary['max']:,} bp "
        f"(median {summary['quantiles'].get('0.5', '?'):,} bp"
        + (f", selected at >= {selected:,} bp)" if selected is not None else ")")
    )


def to_metadata(summary: dict) -> str:
    return json.dumps(summary, sort_keys=True)


def from_metadata(text: str, where: str) -> dict:
    try:
        summary = json.loads(text)
        for key in ("min", "max", "n"):
            int(summary[key])
        floor(summary)
    except (ValueError, KeyError, TypeError):
        raise KmervaeError(f"{where}: the {METADATA_KEY} metadata is not a length summary") from None
    return summary


class LengthGuard:
    """Which records of one embedding run to embed, with the counts its warnings report.

    ``summary`` is the model's ``training_lengths`` (or None); ``min_length`` None takes
    the training floor when ``skip_by_default`` (FASTA), else 0 (stores).
    """

    def __init__(self, summary: dict | None, min_length: int | None, where: str, skip_by_default: bool):
        if min_length is not None and int(min_length) < 0:
            raise KmervaeError(f"--min-length must be >= 0, got {min_length}")
        self.summary, self.where = summary, where
        self.floor = floor(summary) if summary else 0
        self.far = FAR_ABOVE * summary["max"] if summary else math.inf
        if min_length is not None:
            self.min_length, self.source = int(min_length), "--min-length"
        elif skip_by_default:
            self.min_length, self.source = self.floor, "--min-length (default: the training floor)"
        else:
            self.min_length, self.source = 0, "--min-length"
        self.seen = self.skipped = self.below = self.above = 0

    def keep(self, lengths) -> np.ndarray:
        """The boolean mask of the records to embed among ``lengths``; counts them."""
        lengths = np.asarray(lengths)
        kept = lengths >= self.min_length
        self.seen += len(lengths)
        self.skipped += int((~kept).sum())
        self.below += int((kept & (lengths < self.floor)).sum())
        self.above += int((kept & (lengths > self.far)).sum())
        return kept

    def report(self) -> None:
        """Log what was skipped and what was embedded outside the training range."""
        trained = f"the model was trained on {describe(self.summary)}" if self.summary else ""
        if self.summary is None:
            log.info(
                "%s: the model records no training lengths (an earlier kmervae): not checked", self.where
            )
        if self.skipped:
            log.warning(
                "%s: %d of %d contigs are shorter than %s %d bp and were skipped (not embedded)%s",
                self.where,
                self.skipped,
                self.seen,
                self.source,
                self.min_length,
                f"; {trained}" if trained else "",
            )
        if self.below:
            log.warning(
                "%s: %d of %d contigs are shorter than the training floor %d bp but were embedded "
                "(%s): their embeddings are extrapolations",
                self.where,
                self.below,
                self.seen,
                self.floor,
                trained,
            )
        if self.above:
            log.warning(
                "%s: %d of %d contigs are longer than %g x the longest training contig (%d bp): embedded, "
                "but longer than any contig the model was trained on",
                self.where,
                self.above,
                self.seen,
                FAR_ABOVE,
                self.summary["max"],
            )
