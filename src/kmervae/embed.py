"""Embeddings: every contig as the VAE's ``z_mean``, in a zarr store next to its ID.

Layout of ``EMB.zarr`` (format ``kmervae-embeddings``, version 1)::

    id       str     (N,)          record ID, rows in the input's order
    length   int64   (N,)          record length
    sample   str     (N,)          optional, copied from a dataset store
    split    int8    (N,)          optional, copied from a dataset store (0 train, 1 validation, 2 test)
    z_mean   float32 (N, latent)   the encoder's mean

Attributes: ``format``, ``format_version``, ``model_dir``, ``model_config_hash``,
``model_weights_hash`` (of the weight file, :func:`kmervae.vae.files.weights_hash`),
``latent_dim``, ``input_ks``, ``input`` (path), ``input_sha256`` (FASTA files) or
``input_attrs`` (a summary of the input store), ``split`` (when one split was embedded),
``tool_version``, ``n``. Written into a temporary sibling and renamed into place, so a
reader sees a whole store or none; rows are embedded chunk by chunk (bounded memory).

Lengths are checked against the model's training lengths (:mod:`kmervae.lengths`): FASTA
records shorter than ``min_length`` (default: the training floor) are skipped, store rows
only when ``min_length`` is given; a warning counts the skipped records and those embedded
outside the training range.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from zarr.codecs import Crc32cCodec

from .version import __version__
from .errors import KmervaeError
from .kmers import Layout
from .options import Option, defaults
from .lengths import LengthGuard
from .progress import progress
from .io.store import (
    DEFAULT_CHUNK_ROWS,
    OPTIONAL_ARRAYS,
    AtomicGroupWriter,
    KmerStore,
    mapped_row_reader,
    open_group,
    plain_str,
    source_entry,
    take_rows,
)
from .vae.config import require_groups

FORMAT = "kmervae-embeddings"
FORMAT_VERSION = 1
#: the settings of :func:`embed_path` and their CLI flags (the workflow's device is ``training.device``)
OPTIONS = (
    Option("weights", "best", help="which checkpoint", choices=("best", "final")),
    Option("batch_size", 4096, int, "rows per forward pass"),
    Option("threads", None, int, "torch / counting threads"),
    Option(
        "device",
        "auto",
        help="default: CUDA if present",
        choices=("auto", "cpu", "cuda"),
        workflow="training.device",
    ),
    Option("split", None, help="embed one split of a dataset store", choices=("train", "validation", "test")),
    Option(
        "min_length",
        None,
        int,
        "skip contigs shorter than BP (default: for FASTA the model's training floor, the length its "
        "training data was selected at; for a store 0, every row); 0 embeds every contig",
        metavar="BP",
    ),
)
DEFAULTS = defaults(OPTIONS)
DEFAULT_BATCH_SIZE = DEFAULTS["batch_size"]
#: input store attributes copied into the embeddings' ``input_attrs`` (the rest can be large)
INPUT_ATTR_KEYS = (
    "format",
    "format_version",
    "matrix",
    "groups",
    "n",
    "sources",
    "provenance",
    "tool_version",
)


class EmbeddingsWriter(AtomicGroupWriter):
    """Append (ids, lengths, z_mean) chunk by chunk; ``commit`` publishes the store atomically."""

    def __init__(
        self,
        path: str | os.PathLike,
        latent_dim: int,
        attrs: dict | None = None,
        extra: tuple[str, ...] = (),
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ):
        super().__init__(
            path,
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "latent_dim": int(latent_dim),
                "tool_version": __version__,
                **(attrs or {}),
            },
        )
        self.extra = tuple(extra)
        self.latent_dim = int(latent_dim)
        c = int(chunk_rows)
        self.arrays = {
            "id": self.group.create_array("id", shape=(0,), dtype=str, chunks=(c,)),
            "length": self.group.create_array("length", shape=(0,), dtype=np.int64, chunks=(c,)),
            # uncompressed (float32 latents compress by a few per cent) with a CRC32C per chunk:
            # rows can be read by position through memory maps (re-ranking, sampled pools)
            # instead of decoding whole chunks, and damaged chunks are still found by zarr's reads
            "z_mean": self.group.create_array(
                "z_mean",
                shape=(0, self.latent_dim),
                dtype=np.float32,
                chunks=(c, self.latent_dim),
                compressors=[Crc32cCodec()],
            ),
        }
        for name in self.extra:
            self.arrays[name] = self.group.create_array(
                name, shape=(0,), dtype=OPTIONAL_ARRAYS[name], chunks=(c,)
            )

    def append(self, ids, lengths, z_mean, **extra) -> None:
        ids = plain_str(ids)
        if len(ids) == 0:
            return
        z_mean = np.asarray(z_mean, dtype=np.float32)
        if z_mean.shape != (len(ids), self.latent_dim):
            raise ValueError(f"z_mean shape {z_mean.shape} != ({len(ids)}, {self.latent_dim})")
        self.arrays["id"].append(ids)
        self.arrays["length"].append(np.asarray(lengths, dtype=np.int64))
        self.arrays["z_mean"].append(z_mean)
        for name in self.extra:
            kind = OPTIONAL_ARRAYS[name]
            values = extra[name]
            self.arrays[name].append(plain_str(values) if kind is str else np.asarray(values, dtype=kind))
        self.n += len(ids)


class Embeddings:
    """Read access to an embeddings store by row ranges (bounded memory)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.group = open_group(self.path, "embeddings store")
        self.attrs = dict(self.group.attrs)
        if self.attrs.get("format") != FORMAT:
            raise KmervaeError(
                f"{self.path}: not a kmervae embeddings store (format {self.attrs.get('format')!r})"
            )
        if self.attrs.get("format_version") != FORMAT_VERSION:
            raise KmervaeError(
                f"{self.path}: embeddings format version {self.attrs.get('format_version')} is not supported "
                f"(this kmervae reads version {FORMAT_VERSION})"
            )
        self.z_array = self.group["z_mean"]
        self.n = int(self.z_array.shape[0])
        self.latent_dim = int(self.z_array.shape[1])
        self.chunk_rows = max(int(self.z_array.chunks[0]), 1)
        self.row_reader = mapped_row_reader(self.z_array)
        self.model_config_hash = self.attrs.get("model_config_hash")
        self.model_weights_hash = self.attrs.get("model_weights_hash")

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"Embeddings({str(self.path)!r}, n={self.n}, latent={self.latent_dim})"

    def has(self, name: str) -> bool:
        return name in self.group

    def ids(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        return plain_str(self.group["id"][start:stop])

    def lengths(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self.group["length"][start:stop]

    def samples(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Each row's sample: the ``sample`` array, else the store's one ``sample`` attribute, else ""."""
        if self.has("sample"):
            return self.array("sample", start, stop).astype(str)
        stop = self.n if stop is None else min(stop, self.n)
        return np.full(max(stop - start, 0), str(self.attrs.get("sample") or ""), dtype=object).astype(str)

    def array(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows of a 1-D array (``length``, ``sample``, ``split``); strings as ``str``."""
        if name not in self.group:
            raise KmervaeError(f"{self.path}: the embeddings have no {name!r} array")
        values = self.group[name][start:stop]
        return plain_str(values) if values.dtype.kind in "OTU" else values

    def z_mean(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        return np.asarray(self.z_array[start:stop], dtype=np.float32)

    def take(self, index: np.ndarray) -> np.ndarray:
        """``z_mean`` rows at integer positions, returned in ``index`` order: through memory maps
        of the chunk files when the store is uncompressed (what `embed` writes), else chunk by chunk."""
        if self.row_reader is not None:
            return self.row_reader(index)
        return take_rows(self.z_array, index, self.chunk_rows)

    def take_ids(self, index: np.ndarray) -> np.ndarray:
        return plain_str(take_rows(self.group["id"], index, self.chunk_rows))

    def chunks(self, chunk_rows: int | None = None) -> Iterator[tuple[int, int]]:
        step = int(chunk_rows or self.chunk_rows)
        for start in range(0, self.n, step):
            yield start, min(start + step, self.n)


def open_embeddings(path: str | os.PathLike) -> Embeddings:
    return Embeddings(path)


def check_same_model(
    a_hash: str | None, a_name: str, b_hash: str | None, b_name: str, a_weights=None, b_weights=None
) -> None:
    """One clear error when two artefacts come from different models (by config hash, then weights hash)."""
    if a_hash and b_hash and a_hash != b_hash:
        raise KmervaeError(
            f"{a_name} comes from model {a_hash[:12]} but {b_name} from model {b_hash[:12]}: "
            "use embeddings and indexes of the same model"
        )
    if a_weights and b_weights and a_weights != b_weights:
        raise KmervaeError(
            f"{a_name} comes from weights {a_weights} but {b_name} from weights {b_weights} (another "
            f"training of the same config): use embeddings and indexes of the same trained model"
        )


# -- embedding -------------------------------------------------------------------------


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(int(threads))


def to_device(model, device: str = "auto"):
    """The model on ``auto`` (CUDA when present), ``cpu`` or ``cuda``; embeddings come back as numpy."""
    from .train import pick_device

    return model.to(pick_device(device))


def _model_attrs(model, model_dir: str | os.PathLike | None) -> dict:
    return {
        "model_dir": str(model_dir) if model_dir is not None else str(getattr(model, "model_dir", "")),
        "model_config_hash": model.config_hash,
        "model_weights_hash": model.weights_hash,
        "latent_dim": int(model.latent_dim),
        "input_ks": [int(k) for k in model.input_ks],
    }


def is_store(path: str | os.PathLike) -> bool:
    """A zarr store is a directory with zarr.json; anything else is read as FASTA."""
    return (Path(path) / "zarr.json").is_file()


def embed_store(
    model,
    store_path: str | os.PathLike,
    out: str | os.PathLike,
    batch_size: int = DEFAULT_BATCH_SIZE,
    threads: int | None = None,
    split: str | None = None,
    model_dir: str | os.PathLike | None = None,
    min_length: int | None = None,
) -> Path:
    """Embed every row of a k-mer store (or one split of a dataset store) in the store's order.

    Rows shorter than ``min_length`` are skipped (none by default: stores are selected already).
    """
    _set_threads(threads)
    guard = LengthGuard(model.training_lengths, min_length, str(store_path), skip_by_default=False)
    store = KmerStore(store_path)
    reader = f"the model {model_dir}" if model_dir else "the model"
    require_groups(tuple(model.input_ks), store.layout, where=str(store_path), reader=reader, holder="the store")
    extra = tuple(name for name in OPTIONAL_ARRAYS if store.has(name))
    selected = store.split_index(split) if split else None
    attrs = {
        **_model_attrs(model, model_dir),
        "input": str(store_path),
        "input_attrs": {k: store.attrs[k] for k in INPUT_ATTR_KEYS if k in store.attrs},
    }
    if split:
        attrs["split"] = split
    if "sample" not in extra and store.attrs.get("sample"):  # one sample's store: its name for every row
        attrs["sample"] = str(store.attrs["sample"])
    total = store.n if selected is None else len(selected)
    with EmbeddingsWriter(
        out, model.latent_dim, attrs=attrs, extra=extra, chunk_rows=store.chunk_rows
    ) as writer:
        with progress("embed", total=total, unit="contigs") as bar:
            for start, stop in store.chunks(max(int(batch_size), store.chunk_rows)):
                rows = None if selected is None else selected[(selected >= start) & (selected < stop)] - start
                if rows is not None and len(rows) == 0:
                    continue
                matrix = store.rows(start, stop)
                lengths = store.lengths(start, stop)
                ids = store.ids(start, stop)
                extras = {name: store.read(name, start, stop) for name in extra}
                if rows is not None:
                    matrix, lengths, ids = matrix[rows], lengths[rows], ids[rows]
                    extras = {name: values[rows] for name, values in extras.items()}
                bar.update(len(ids))
                if not (keep := guard.keep(lengths)).all():
                    matrix, lengths, ids = matrix[keep], lengths[keep], ids[keep]
                    extras = {name: values[keep] for name, values in extras.items()}
                if len(ids):
                    z = model.embed(matrix, store.layout, lengths=lengths, batch_size=batch_size)
                    writer.append(ids, lengths, z, **extras)
    guard.report()
    return Path(out)


def embed_fasta(
    model,
    fasta_paths: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    batch_size: int = DEFAULT_BATCH_SIZE,
    threads: int | None = None,
    model_dir: str | os.PathLike | None = None,
    min_length: int | None = None,
) -> Path:
    """Count FASTA records with the store's kernel (only the model's groups) and embed them.

    Records shorter than ``min_length`` (default: the model's training floor) are skipped.
    """
    from .count import count_chunks

    _set_threads(threads)
    paths = [Path(p) for p in fasta_paths]
    where = str(paths[0]) if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} more)"
    guard = LengthGuard(model.training_lengths, min_length, where, skip_by_default=True)
    layout = Layout(tuple(model.input_ks))
    attrs = {
        **_model_attrs(model, model_dir),
        "input": [str(p) for p in paths] if len(paths) > 1 else str(paths[0]),
        "input_sha256": [source_entry(p) for p in paths],
    }
    with EmbeddingsWriter(out, model.latent_dim, attrs=attrs) as writer:
        with progress("embed", unit="contigs") as bar:
            for ids, lengths, counts in count_chunks(paths, layout=layout, threads=threads or 1):
                bar.update(len(ids))
                if not (keep := guard.keep(lengths)).all():
                    ids, lengths, counts = ids[keep], lengths[keep], counts[keep]
                if len(ids):
                    z = model.embed(counts, layout, lengths=lengths, batch_size=batch_size)
                    writer.append(ids, lengths, z)
    guard.report()
    return Path(out)


def embed_path(
    model_dir: str | os.PathLike,
    input_path: str | os.PathLike | list,
    out: str | os.PathLike,
    weights: str = DEFAULTS["weights"],
    batch_size: int = DEFAULTS["batch_size"],
    threads: int | None = DEFAULTS["threads"],
    split: str | None = DEFAULTS["split"],
    device: str = DEFAULTS["device"],
    min_length: int | None = DEFAULTS["min_length"],
) -> Path:
    """Embed a k-mer store or FASTA file(s) with the model in ``model_dir`` (dispatch on zarr.json).

    ``min_length``: see :mod:`kmervae.lengths` (None: the FASTA default, the training floor).
    """
    from .vae.files import load_model

    model = to_device(load_model(model_dir, weights=weights), device)
    inputs = list(input_path) if isinstance(input_path, (list, tuple)) else [input_path]
    for p in inputs:
        if not Path(p).exists():
            raise KmervaeError(f"{p}: no such file or store")
    if len(inputs) == 1 and is_store(inputs[0]):
        return embed_store(
            model, inputs[0], out, batch_size, threads, split, model_dir=model_dir, min_length=min_length
        )
    if any(is_store(p) for p in inputs):
        raise KmervaeError(f"{inputs[0]}: embed one k-mer store at a time, or any number of FASTA files")
    if split:
        raise KmervaeError(f"{inputs[0]}: --split needs a dataset store, not FASTA")
    return embed_fasta(model, inputs, out, batch_size, threads, model_dir=model_dir, min_length=min_length)


def embed_sequences(model, seqs: Iterable[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """Library call: ``z_mean`` (float32, n x latent) of sequences given as strings (any iterable).

    Sequences are counted and embedded ``batch_size`` at a time, so memory beyond the
    result is bounded however many are given. Every sequence is embedded (row i is
    sequence i); a warning counts those outside the model's training lengths.
    """
    from itertools import islice

    from .count import count_sequences

    if isinstance(seqs, (str, bytes)):
        raise KmervaeError(
            f"embed_sequences takes an iterable of sequences, not one {type(seqs).__name__} "
            f"({len(seqs)} characters): pass [sequence]"
        )
    guard = LengthGuard(model.training_lengths, 0, "embed_sequences", skip_by_default=False)

    layout = Layout(tuple(model.input_ks))
    parts = []
    it = iter(seqs)
    while batch := list(islice(it, batch_size)):
        counts = count_sequences(batch, layout)
        lengths = np.array([len(s) for s in batch], dtype=np.int64)
        guard.keep(lengths)
        parts.append(
            np.asarray(model.embed(counts, layout, lengths=lengths, batch_size=batch_size), dtype=np.float32)
        )
    guard.report()
    return np.concatenate(parts) if parts else np.empty((0, int(model.latent_dim)), dtype=np.float32)
