"""Streaming FASTA reader: plain or gzip files in, chunks of records as one byte buffer out.

No per-character or per-line Python: the file is read in blocks cut at the last
``\\n>``, and one compiled (numba) pass per block copies the sequence characters, finds
each header's ID and flags unexpected bytes; all IDs of a block are decoded in one
call. The sequences of a chunk are one uint8 buffer with offsets, which is what the
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
from numba import njit

from .errors import KmervaeError

GZIP_MAGIC = b"\x1f\x8b"
OTHER_COMPRESSIONS = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}
READ_BLOCK = 4 << 20
DEFAULT_CHUNK_BASES = 64_000_000  # with 4096 records: contigs up to ~15 kb fill whole store chunks
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
                raise KmervaeError(
                    f"{path}: truncated or corrupt gzip data after {where()} ({exc})"
                ) from None
            if not block:
                return
            yield block


def _record_blocks(path: Path, block_size: int, where) -> Iterator[bytes]:
    """Texts of whole records (each starts with '>'), about one read block each.

    Blocks are cut at the last ``\\n>``; a record longer than a block is assembled
    from parts.
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
        if text:
            yield text
    text = b"".join(parts)
    if text:
        yield text


def _record_texts(path: Path, block_size: int, where) -> Iterator[bytes]:
    """One text per record: header line + sequence lines, without the leading '>'."""
    for text in _record_blocks(path, block_size, where):
        yield from _split_records(text)


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
            if _looks_binary(sample[:4096]):
                raise KmervaeError(
                    f"{path}: not FASTA (a binary file; a FASTA file starts with a '>' header line)"
                )
            shown = stripped[:160].decode("utf-8", "replace")[:40]
            raise KmervaeError(
                f"{path}: not FASTA (text without a leading '>': {shown!r} comes before any '>' header line)"
            )


#: control characters other than whitespace: not in text files
_CONTROL = bytes(set(range(32)) - set(WHITESPACE)) + b"\x7f"


def _looks_binary(data: bytes) -> bool:
    """Not text: control characters, or bytes that are not UTF-8 (a character cut off by
    the end of the sample still counts as text)."""
    if len(data.translate(None, _CONTROL)) != len(data):
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return not (exc.reason == "unexpected end of data" and exc.start >= len(data) - 3)
    return False


def _split_records(text: bytes) -> list[bytes]:
    """``>a\\nAC\\n>b\\nGT\\n`` → ``[b"a\\nAC\\n", b"b\\nGT\\n"]``."""
    if not text:
        return []
    return text[1:].split(b"\n>")


#: byte classes for the scanner: 0 sequence character, 1 whitespace, 2 anything else
_BYTE_CLASS = np.full(256, 2, dtype=np.uint8)
_BYTE_CLASS[np.frombuffer(SEQUENCE_CHARACTERS, dtype=np.uint8)] = 0
_BYTE_CLASS[np.frombuffer(WHITESPACE, dtype=np.uint8)] = 1
_BYTE_CLASS.setflags(write=False)


@njit(cache=True, nogil=True)
def _scan_records(data, byte_class, seq, header_start, header_stop, seq_stop, bad_at):
    """One pass over whole records (``data`` starts with '>'): copy sequence characters
    into ``seq`` (dropping line breaks, whitespace, ';'/'#' comment lines), note the span
    of each header's first word (the ID) and the first unexpected byte per record (-1 if none).

    Returns the number of records. A header is a line whose first byte is '>'.
    """
    n_bytes = len(data)
    i = 0
    out = 0
    n = 0
    while i < n_bytes:
        i += 1  # the '>'
        while i < n_bytes and data[i] != 10 and byte_class[data[i]] == 1:
            i += 1
        header_start[n] = i  # the ID: the header's first word
        while i < n_bytes and data[i] != 10 and byte_class[data[i]] != 1:
            i += 1
        header_stop[n] = i
        while i < n_bytes and data[i] != 10:
            i += 1
        i += 1
        bad = -1
        while i < n_bytes:  # one sequence line per iteration; i is at a line start
            if data[i] == 62:  # '>': the next record
                break
            while i < n_bytes and data[i] != 10 and byte_class[data[i]] == 1:
                i += 1  # leading whitespace
            if i < n_bytes and (data[i] == 59 or data[i] == 35):  # ';' or '#': a comment line
                while i < n_bytes and data[i] != 10:
                    i += 1
            while i < n_bytes:
                c = data[i]
                if c == 10:
                    break
                kind = byte_class[c]
                seq[out] = c
                out += kind == 0
                if kind == 2 and bad < 0:
                    bad = i
                i += 1
            i += 1
        seq_stop[n] = out
        bad_at[n] = bad
        n += 1
    return n


def _join_ids(data: np.ndarray, start: np.ndarray, stop: np.ndarray) -> bytes:
    """b"id1\\nid2\\n..." from the ID spans."""
    out = np.empty(int((stop - start).sum()) + len(start), dtype=np.uint8)
    _copy_spans(data, start, stop, out)
    return out.tobytes()


@njit(cache=True, nogil=True)
def _copy_spans(data, start, stop, out):
    o = 0
    for r in range(len(start)):
        for i in range(start[r], stop[r]):
            out[o] = data[i]
            o += 1
        out[o] = 10
        o += 1


@dataclass
class _Block:
    """The records of one text block, parsed."""

    ids: list
    lengths: np.ndarray
    seq: np.ndarray
    offsets: np.ndarray


def _parse_block(path: Path, text: bytes, first_number: int) -> _Block:
    data = np.frombuffer(text, dtype=np.uint8)
    capacity = len(text) // 2 + 1  # each record takes at least 2 bytes; untouched pages cost nothing
    header_start = np.empty(capacity, dtype=np.int64)
    header_stop = np.empty(capacity, dtype=np.int64)
    # not np.zeros: glibc serves repeated 16 MB blocks from its heap, where calloc must
    # clear them (0.1 CPU-s per 100 Mbp); the scanner writes every entry it returns
    offsets = np.empty(capacity + 1, dtype=np.int64)
    offsets[0] = 0
    bad_at = np.empty(capacity, dtype=np.int64)
    seq = np.empty(len(text) + 1, dtype=np.uint8)  # + 1: the scanner writes one byte past a non-sequence byte
    n = _scan_records(data, _BYTE_CLASS, seq, header_start, header_stop, offsets[1:], bad_at)
    header_start, header_stop = header_start[:n], header_stop[:n]
    no_id = np.flatnonzero(header_stop == header_start)
    if len(no_id):
        raise KmervaeError(f"{path}: record {first_number + int(no_id[0])}: the header line has no ID")
    try:  # all IDs in one decode + split (C speed); IDs never contain a line break
        ids = _join_ids(data, header_start, header_stop).decode("utf-8").split("\n")[:-1]
    except UnicodeDecodeError:
        for i in range(n):
            try:
                text[header_start[i] : header_stop[i]].decode("utf-8")
            except UnicodeDecodeError:
                raise KmervaeError(
                    f"{path}: record {first_number + i}: the header is not text (a binary file?)"
                ) from None
        raise  # pragma: no cover
    bad = np.flatnonzero(bad_at[:n] >= 0)
    if len(bad):
        i = int(bad[0])
        char = text[bad_at[i] : bad_at[i] + 1]
        shown = char.decode("ascii", "backslashreplace")
        raise KmervaeError(
            f"{path}: record {first_number + i} ({ids[i]}): unexpected character {shown!r} "
            f"(byte 0x{char[0]:02x}) in the sequence: not a FASTA nucleotide file?"
        )
    offsets = offsets[: n + 1]
    return _Block(ids, np.diff(offsets), seq[: offsets[-1]], offsets)


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
    pending: list[tuple[_Block, int, int]] = []  # (block, first row, stop row) making up the next chunk
    state = {"records": 0, "last_id": None}  # records parsed so far, for error messages
    chunk_first = 1
    chunk_rows = chunk_bases_so_far = 0

    def where() -> str:
        n, last = state["records"], state["last_id"]
        return f"record {n} ({last})" if last is not None else "the start"

    def emit() -> FastaChunk:
        ids = np.array([i for b, lo, hi in pending for i in b.ids[lo:hi]], dtype=str)
        lengths = np.concatenate([b.lengths[lo:hi] for b, lo, hi in pending])
        seq = np.concatenate([b.seq[b.offsets[lo] : b.offsets[hi]] for b, lo, hi in pending])
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if seen is not None:
            seen.check(file_index, chunk_first, ids)
        return FastaChunk(ids, lengths, seq, offsets, path, file_index, chunk_first)

    for text in _record_blocks(path, block_size, where):
        block = _parse_block(path, text, state["records"] + 1)
        n = len(block.ids)
        state["records"] += n
        state["last_id"] = block.ids[-1]
        row = 0
        while row < n:
            # take records until the chunk holds chunk_records, or the record that reaches chunk_bases
            room = min(chunk_records - chunk_rows, n - row)
            reach = chunk_bases - chunk_bases_so_far
            bases = block.offsets[row + 1 : row + room + 1] - block.offsets[row]
            take = min(room, int(np.searchsorted(bases, reach, side="left")) + 1)
            pending.append((block, row, row + take))
            chunk_rows += take
            chunk_bases_so_far += int(bases[take - 1])
            row += take
            if chunk_rows >= chunk_records or chunk_bases_so_far >= chunk_bases:
                yield emit()
                pending, chunk_first = [], chunk_first + chunk_rows
                chunk_rows = chunk_bases_so_far = 0
    if state["records"] == 0:
        raise KmervaeError(f"{path}: no FASTA records (an empty file?)")
    if pending:
        yield emit()


#: 64-bit hash of an ID (Python's, salted per process: only compared within one run)
_id_hash = hash


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
        hashes = np.fromiter(map(_id_hash, ids.tolist()), dtype=np.int64, count=len(ids))
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
            merged = np.concatenate([self.runs[-1], top])
            merged.sort(kind="stable")  # timsort: a linear merge of the two runs, in place
            self.runs[-1] = merged

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
