"""Cut genomes into contig-like fragments with a known origin (the demo's ground truth).

Each record is tiled left to right with fragment lengths drawn from a seeded
log-normal (or log-uniform) distribution clipped to [min_length, max_length], like the
spread of assembled metagenome contigs. The last piece of a record is whatever is left
when the next draw does not fit; it is kept if it is at least ``min_length`` long and
*dropped* otherwise (so no fragment is shorter than ``min_length`` and none is longer
than ``max_length``; a record shorter than ``min_length`` yields nothing).

Lengths come from a random stream seeded by (seed, genome, record), so a record's
fragments do not change when other genomes are added or reordered. Fragment IDs are
``<record>_<start>-<end>`` with 1-based inclusive coordinates (samtools style); the
labels table maps each fragment to its genome, record and replicon type.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from .io.atomic import atomic_path
from .errors import KmervaeError
from .io.fasta import open_fasta, read_fasta_chunks
from .options import Option, defaults
from .progress import progress

DISTRIBUTIONS = ("lognormal", "loguniform")
REPLICON_TYPES = ("chromosome", "plasmid", "phage")
LABEL_COLUMNS = ("contig_id", "genome", "record", "replicon_type", "start", "end", "length")
#: the settings of :func:`chop_genomes`, its CLI flags and the workflow's ``chop`` keys
OPTIONS = (
    Option("seed", 42, int, "seed of the fragment lengths", workflow="seed"),
    Option("min_length", 1000, int, "shortest fragment", workflow="chop.min_length"),
    Option(
        "max_length",
        50_000,
        int,
        "longest fragment (default 50000; the workflow's chop.max_length defaults to 100000)",
        workflow="chop.max_length",
        workflow_default=100_000,
    ),
    Option(
        "distribution",
        "lognormal",
        help="fragment length distribution",
        choices=DISTRIBUTIONS,
        workflow="chop.distribution",
    ),
    Option(
        "median",
        3000,
        float,
        "log-normal median (default 3000; the workflow's chop.median defaults to 5000, see docs/datasets.md)",
        workflow="chop.median",
        workflow_default=5000,
    ),
    Option("sigma", 1.0, float, "log-normal sigma"),
    Option(
        "genome_names", None, nargs="+", metavar="NAME", help="one genome name per FASTA (default: file stem)"
    ),
)
DEFAULTS = defaults(OPTIONS)
DEFAULT_MEDIAN = DEFAULTS["median"]
DEFAULT_SIGMA = DEFAULTS["sigma"]
LINE_WIDTH = 80
FASTA_SUFFIXES = re.compile(r"(\.(fa|fasta|fna|fas|fsa|ffn|seq))?(\.gz)?$", re.IGNORECASE)


def genome_name_of(path: str | os.PathLike) -> str:
    """A genome's default name: its file name without FASTA and gzip suffixes."""
    return FASTA_SUFFIXES.sub("", Path(path).name) or Path(path).name


def replicon_type_of(description: str) -> str:
    """Replicon type from a FASTA header: "plasmid" or "phage"/"virus" in it, else chromosome."""
    text = description.lower()
    if "plasmid" in text:
        return "plasmid"
    if "phage" in text or "virus" in text:
        return "phage"
    return "chromosome"


def fragment_lengths(
    rng: np.random.Generator,
    distribution: str,
    min_length: int,
    max_length: int,
    median: float,
    sigma: float,
    batch: int = 64,
) -> Iterator[int]:
    """An endless stream of fragment lengths, clipped to [min_length, max_length]."""
    while True:
        if distribution == "lognormal":
            draws = rng.lognormal(np.log(median), sigma, size=batch)
        else:
            draws = np.exp(rng.uniform(np.log(min_length), np.log(max_length), size=batch))
        yield from np.clip(np.rint(draws), min_length, max_length).astype(np.int64).tolist()


def tile(record_length: int, lengths: Iterator[int], min_length: int) -> list[tuple[int, int]]:
    """0-based half-open [start, end) pieces tiling a record from the left; a short tail is dropped."""
    pieces, start = [], 0
    while start < record_length:
        length = next(lengths)
        if start + length <= record_length:
            pieces.append((start, start + length))
            start += length
        else:
            if record_length - start >= min_length:
                pieces.append((start, record_length))
            break
    return pieces


def read_descriptions(path: Path) -> list[str]:
    """The header lines of a FASTA file, in record order (the reader keeps only the IDs)."""
    with open_fasta(path) as fh:
        return [line[1:].decode("utf-8", "replace").strip() for line in fh if line.startswith(b">")]


def _stable_seed(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def _names_for(fastas: list[Path], genome_names) -> list[str]:
    if genome_names is None:
        return [genome_name_of(p) for p in fastas]
    if isinstance(genome_names, Mapping):
        lookup = {str(k): str(v) for k, v in genome_names.items()}
        return [
            lookup.get(str(p), lookup.get(p.name, lookup.get(genome_name_of(p), genome_name_of(p))))
            for p in fastas
        ]
    names = [str(n) for n in genome_names]
    if len(names) != len(fastas):
        raise KmervaeError(f"{len(names)} genome names given for {len(fastas)} FASTA files")
    return names


def _write_fragment(
    fasta, labels, sequence: bytes, record_id, genome, replicon, start: int, end: int
) -> None:
    """One fragment (0-based [start, end) of ``sequence``) as a FASTA record and a labels row."""
    fragment_id = f"{record_id}_{start + 1}-{end}"
    header = f">{fragment_id} genome={genome} replicon={replicon} source={record_id}:{start + 1}-{end}\n"
    piece = sequence[start:end]
    fasta.write(
        header.encode()
        + b"".join(piece[a : a + LINE_WIDTH] + b"\n" for a in range(0, len(piece), LINE_WIDTH))
    )
    labels.write(
        "\t".join(map(str, (fragment_id, genome, record_id, replicon, start + 1, end, end - start))) + "\n"
    )


def chop_genomes(
    fastas: Sequence[str | os.PathLike],
    out_fasta: str | os.PathLike,
    out_labels: str | os.PathLike,
    seed: int = DEFAULTS["seed"],
    min_length: int = DEFAULTS["min_length"],
    max_length: int = DEFAULTS["max_length"],
    distribution: str = DEFAULTS["distribution"],
    median: float = DEFAULTS["median"],
    sigma: float = DEFAULTS["sigma"],
    genome_names: Sequence[str] | Mapping[str, str] | None = None,
    replicon_types: Mapping[str, str] | None = None,
) -> tuple[Path, Path]:
    """Chop every record of ``fastas`` into fragments; write them and their labels table.

    ``genome_names``: one name per file, or a mapping from path / file name / stem (default:
    the file stem). ``replicon_types``: a mapping from record ID or genome name to
    chromosome / plasmid / phage (default: read from the header text). ``median`` and
    ``sigma`` shape the log-normal; the log-uniform spans [min_length, max_length].
    The FASTA is gzip-compressed (reproducibly, mtime 0) when its name ends in ``.gz``.
    """
    if distribution not in DISTRIBUTIONS:
        raise KmervaeError(
            f"unknown length distribution {distribution!r} (choose {' or '.join(DISTRIBUTIONS)})"
        )
    if not 1 <= min_length <= max_length:
        raise KmervaeError(f"fragment lengths need 1 <= min ({min_length}) <= max ({max_length})")
    if distribution == "lognormal" and (median <= 0 or sigma < 0):
        raise KmervaeError(f"the log-normal needs median > 0 and sigma >= 0, got {median} and {sigma}")
    fastas = [Path(p) for p in fastas]
    if not fastas:
        raise KmervaeError("chop needs at least one FASTA file")
    names = _names_for(fastas, genome_names)
    types = dict(replicon_types or {})
    bad = {k: v for k, v in types.items() if v not in REPLICON_TYPES}
    if bad:
        raise KmervaeError(f"replicon types must be one of {', '.join(REPLICON_TYPES)}, got {bad}")
    descriptions = [read_descriptions(p) for p in fastas]

    out_fasta, out_labels = Path(out_fasta), Path(out_labels)
    with atomic_path(out_fasta) as tmp_fasta, atomic_path(out_labels) as tmp_labels:
        with open(tmp_fasta, "wb") as raw, open(tmp_labels, "w", encoding="utf-8") as labels:
            fasta = (
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
                if out_fasta.name.endswith(".gz")
                else raw
            )
            labels.write("\t".join(LABEL_COLUMNS) + "\n")
            with progress("chop", unit="records") as bar:
                for chunk in read_fasta_chunks(fastas):
                    genome = names[chunk.file_index]
                    for i, record_id in enumerate(chunk.ids.tolist()):
                        number = chunk.first_record + i
                        replicon = (
                            types.get(record_id)
                            or types.get(genome)
                            or replicon_type_of(descriptions[chunk.file_index][number - 1])
                        )
                        sequence = chunk.seq[chunk.offsets[i] : chunk.offsets[i + 1]].tobytes()
                        rng = np.random.default_rng([seed, _stable_seed(genome), _stable_seed(record_id)])
                        lengths = fragment_lengths(rng, distribution, min_length, max_length, median, sigma)
                        for start, end in tile(len(sequence), lengths, min_length):
                            _write_fragment(fasta, labels, sequence, record_id, genome, replicon, start, end)
                        bar.update(1)
            if fasta is not raw:
                fasta.close()
    return out_fasta, out_labels
