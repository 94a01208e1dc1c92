"""Streaming FASTA reader: plain or gzip files in, chunks of records as one byte buffer out.

Parsing uses bytes operations only (``split``, ``partition``, ``translate``) so the
cost per base is C-speed and the cost per record is a few Python calls; the sequences
of a chunk are concatenated into one uint8 buffer with offsets, which is what the
counting kernel eats. Memory is bounded by the chunk size (plus the longest record,
which cannot be split), never by the file size.

Accepted: multi-line records, CRLF, lower case, blank lines, ``;`` and ``#`` comment
lines, spaces in sequence lines, headers whose ID is the first word. Everything a user
can get wrong raises :class:`~kmervae.errors.KmervaeError` naming the file, the record
(number and ID) and the problem.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import KmervaeError

GZIP_MAGIC = b"\x1f\x8b"
OTHER_COMPRESSIONS = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}
READ_BLOCK = 4 << 20
DEFAULT_CHUNK_BASES = 16_000_000
DEFAULT_CHUNK_RECORDS = 4096

WHITESPACE = b" \t\r\n\v\f"
# Sequence characters we accept: letters (ACGT, N, IUPAC codes, anything else is a
# k-mer break) and the usual gap/stop symbols. Anything else means "not FASTA".
SEQUENCE_CHARACTERS = bytes(range(ord("A"), ord("Z") + 1)) + bytes(range(ord("a"), ord("z") + 1)) + b"-.*"


@dataclass
class FastaChunk:
    """A run of consecutive records: ``seq[offsets[i]:offsets[i + 1]]`` is record ``i``."""

    ids: np.ndarray  # str
    lengths: np.ndarray  # int64, sequence characters as written (no line breaks / whitespace)
    seq: np.ndarray  # uint8, all sequences concatenated
    offsets: np.ndarray  # int64, len(ids) + 1
    path: Path  # file the records came from (a chunk never spans two files)
    file_index: int  # position of ``path`` in the paths given to read_fasta_chunks
    first_record: int  # 1-based number of the chunk's first record in its file

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def bases(self) -> int:
        return int(self.offsets[-1])


def open_fasta(path: str | os.PathLike):
    """Open a FASTA file as a binary stream, decompressing gzip (recognised by its magic bytes)."""
    path = Path(path)
    if not path.exists():
        raise KmervaeError(f"{path}: no such file")
    if path.is_dir():
        raise KmervaeError(f"{path}: is a directory, not a FASTA file")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic.startswith(GZIP_MAGIC):
        return gzip.open(path, "rb")
    for prefix, name in OTHER_COMPRESSIONS.items():
        if magic.startswith(prefix):
            raise KmervaeError(f"{path}: {name}-compressed files are not supported; use gzip or plain FASTA")
    return open(path, "rb")


def _read_blocks(path: Path, block_size: int, where) -> Iterator[bytes]:
    """Blocks of decompressed bytes; a broken gzip stream becomes a KmervaeError."""
    with open_fasta(path) as fh:
        while True:
            try:
                block = fh.read(block_size)
            except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
                raise KmervaeError(f"{path}: truncated or corrupt gzip data after {where()} ({exc})") from None
            if not block:
                return
            yield block


def _record_texts(path: Path, block_size: int, where) -> Iterator[bytes]:
    """Split a file into record texts (header line + sequence lines, without the leading '>').

    Records are found by splitting at ``\\n>``; a record longer than a block is
    assembled from parts.
    """
    parts: list[bytes] = []
    for block in _from_first_record(path, _read_blocks(path, block_size, where)):
        cut = block.rfind(b"\n>")
        if cut < 0:
            if block[:1] == b">" and parts and parts[-1].endswith(b"\n"):
                cut = -1  # the record boundary falls exactly between two blocks
            else:
                parts.append(block)
                continue
        parts.append(block[: cut + 1])
        text = b"".join(parts)
        parts = [block[cut + 1 :]]
        yield from _split_records(text)
    yield from _split_records(b"".join(parts))


def _from_first_record(path: Path, blocks: Iterator[bytes]) -> Iterator[bytes]:
    """The byte stream from the first '>' on; only blank and comment lines may precede it.

    Checked on the first block, so a large binary or non-FASTA file fails at once.
    """
    pending = b""
    for block in blocks:
        data = pending + block
        if data[:1] == b">":
            yield data
            break
        head = data.find(b"\n>")
        complete = data if head >= 0 else data[: data.rfind(b"\n") + 1]
        _check_preamble(path, complete if head < 0 else data[: head + 1], data)
        if head >= 0:
            yield data[head + 1 :]
            break
        pending = data[len(complete) :]
        _check_preamble(path, pending, data)  # an unfinished line must look like a comment too
    else:
        if pending.strip(WHITESPACE):
            _check_preamble(path, pending, pending)
        return
    yield from blocks


def _check_preamble(path: Path, preamble: bytes, sample: bytes) -> None:
    for number, line in enumerate(preamble.split(b"\n"), start=1):
        stripped = line.strip(WHITESPACE)
        if stripped and stripped[:1] not in (b";", b"#"):
            shown = stripped[:20].decode("ascii", "backslashreplace")
            what = "a binary file" if _looks_binary(sample[:4096]) else f"it starts with {shown!r}"
            raise KmervaeError(f"{path}: not FASTA ({what}; a FASTA file starts with a '>' header line)")


def _looks_binary(data: bytes) -> bool:
    return b"\x00" in data or bool(data.translate(None, bytes(range(32, 127)) + WHITESPACE))


def _split_records(text: bytes) -> list[bytes]:
    """``>a\\nAC\\n>b\\nGT\\n`` → ``[b"a\\nAC\\n", b"b\\nGT\\n"]``."""
    if not text:
        return []
    return text[1:].split(b"\n>")


def _clean_sequence(body: bytes) -> bytes:
    """Sequence lines → one line of sequence characters (comments and whitespace removed)."""
    if b";" in body or b"#" in body:
        body = b"\n".join(
            line for line in body.split(b"\n") if line.lstrip(WHITESPACE)[:1] not in (b";", b"#")
        )
    return body.translate(None, WHITESPACE)


def read_fasta_chunks(
    paths: str | os.PathLike | list[str | os.PathLike],
    chunk_bases: int = DEFAULT_CHUNK_BASES,
    chunk_records: int = DEFAULT_CHUNK_RECORDS,
    unique_ids: bool = True,
    block_size: int = READ_BLOCK,
) -> Iterator[FastaChunk]:
    """Yield :class:`FastaChunk` s of at most ``chunk_records`` records and about ``chunk_bases`` bases.

    Records come in file order, files in the given order; a chunk never spans two files.
    With ``unique_ids`` a record ID seen before (in this file or an earlier one of the
    call) is an error, checked with 8 bytes of memory per record.
    """
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    seen = _SeenIds(paths) if unique_ids else None
    for file_index, path in enumerate(paths):
        yield from _read_file_chunks(path, file_index, chunk_bases, chunk_records, seen, block_size)


def _read_file_chunks(path, file_index, chunk_bases, chunk_records, seen, block_size) -> Iterator[FastaChunk]:
    ids: list[str] = []
    seqs: list[bytes] = []
    bases = 0
    number = 0  # 1-based number of the last record read
    first = 1

    def where() -> str:
        return f"record {number} ({ids[-1]})" if ids else (f"record {number}" if number else "the start")

    def flush() -> FastaChunk:
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        buffer = b"".join(seqs)
        bad = buffer.translate(None, SEQUENCE_CHARACTERS)
        if bad:
            _raise_bad_character(path, first, ids, seqs, bad[:1])
        id_array = np.array(ids, dtype=str)
        if seen is not None:
            seen.check(file_index, first, id_array)
        seq = np.frombuffer(buffer, dtype=np.uint8)
        return FastaChunk(id_array, lengths, seq, offsets, path, file_index, first)

    for text in _record_texts(path, block_size, lambda: where()):
        number += 1
        header, _, body = text.partition(b"\n")
        words = header.split(None, 1)
        if not words:
            raise KmervaeError(f"{path}: record {number}: the header line has no ID")
        try:
            record_id = words[0].decode("utf-8")
        except UnicodeDecodeError:
            raise KmervaeError(f"{path}: record {number}: the header is not text (a binary file?)") from None
        ids.append(record_id)
        sequence = _clean_sequence(body)
        seqs.append(sequence)
        bases += len(sequence)
        if len(ids) >= chunk_records or bases >= chunk_bases:
            yield flush()
            ids, seqs, bases, first = [], [], 0, number + 1
    if number == 0:
        raise KmervaeError(f"{path}: no FASTA records (an empty file?)")
    if ids:
        yield flush()


def _raise_bad_character(path, first, ids, seqs, char: bytes):
    for i, s in enumerate(seqs):
        if char in s:
            shown = char.decode("ascii", "backslashreplace")
            raise KmervaeError(
                f"{path}: record {first + i} ({ids[i]}): unexpected character {shown!r} "
                f"(byte 0x{char[0]:02x}) in the sequence: not a FASTA nucleotide file?"
            )
    raise AssertionError("bad character not found")  # pragma: no cover


def _id_hash(record_id: str) -> int:
    """64-bit hash of an ID (Python's, salted per process: only compared within one run)."""
    return hash(record_id)


class _SeenIds:
    """Exact duplicate-ID detection with 8 bytes per record.

    Keeps sorted runs of 64-bit hashes of the IDs seen so far (merged like a binary
    counter, so the total work is O(N log N)). A hash hit is confirmed by re-reading the
    earlier headers, so a hash collision never turns into a false error.
    """

    def __init__(self, paths: list[Path]):
        self.paths = paths
        self.runs: list[np.ndarray] = []

    def check(self, file_index: int, first: int, ids: np.ndarray) -> None:
        path = self.paths[file_index]
        hashes = np.fromiter((_id_hash(i) for i in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(hashes, kind="stable")
        sorted_hashes = hashes[order]
        repeated = sorted_hashes[1:] == sorted_hashes[:-1]
        if repeated.any():
            # rows whose hash occurs more than once in this chunk, in file order
            suspects = np.sort(order[np.flatnonzero(np.r_[repeated, False] | np.r_[False, repeated])])
            first_row: dict[str, int] = {}
            for row in suspects:
                if ids[row] in first_row:
                    raise KmervaeError(
                        f"{path}: record {first + row} ({ids[row]}): duplicate ID, "
                        f"already record {first + first_row[ids[row]]}"
                    )
                first_row[ids[row]] = row
        for run in self.runs:
            pos = np.searchsorted(run, sorted_hashes)
            hit = np.flatnonzero(run[np.minimum(pos, len(run) - 1)] == sorted_hashes)
            for h in hit:
                i = order[h]
                self._confirm(file_index, first + i, ids[i])
        self._add(sorted_hashes)

    def _add(self, sorted_hashes: np.ndarray) -> None:
        self.runs.append(sorted_hashes)
        while len(self.runs) > 1 and len(self.runs[-2]) <= 2 * len(self.runs[-1]):
            top = self.runs.pop()
            self.runs[-1] = np.sort(np.concatenate([self.runs[-1], top]), kind="stable")

    def _confirm(self, file_index: int, number: int, record_id: str) -> None:
        """Find an earlier record with the same ID (rare path: only on a hash hit)."""
        path = self.paths[file_index]
        wanted = record_id.encode("utf-8")
        for index, earlier in enumerate(self.paths[: file_index + 1]):
            for n, text in enumerate(_record_texts(earlier, READ_BLOCK, lambda: "a record"), start=1):
                if index == file_index and n >= number:
                    return  # only a hash collision
                words = text.partition(b"\n")[0].split(None, 1)
                if words and words[0] == wanted:
                    where = "" if index == file_index else f" of {earlier}"
                    raise KmervaeError(
                        f"{path}: record {number} ({record_id}): duplicate ID, already record {n}{where}"
                    )
