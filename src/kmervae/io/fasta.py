"""Streaming FASTA reader: plain or gzip files in, chunks of records as one byte buffer out.

Records are parsed by needletail (a Rust FASTA/FASTQ parser, which also decompresses
gzip); kmervae's rules and checks run on top of it, vectorised over blocks of about 4 MB:
every header has an ID (its first word) that is text, every sequence byte is a sequence
character, IDs are unique, a gzip stream is complete. The sequences of a chunk are one
uint8 buffer with offsets, which is what the counting kernel eats. Memory is bounded by
the chunk size (plus the longest record, which cannot be split), never by the file size.

Accepted: multi-line records, CRLF, lower case, blank lines, ``;`` and ``#`` comment
lines, spaces in sequence lines, headers whose ID is the first word. needletail knows
no comment lines and keeps spaces in sequences, so a file that has them (or text before
its first header) is read, from the first record the checks cannot settle, by a line
reader in Python that applies every rule (slower; such files are rare). Everything a
user can get wrong raises :class:`~kmervae.errors.KmervaeError` naming the file, the
record (number and ID) and the problem.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import KmervaeError

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


#: byte classes of the checks: 0 sequence character, 1 whitespace, 2 anything else
_BYTE_CLASS = np.full(256, 2, dtype=np.uint8)
_BYTE_CLASS[np.frombuffer(SEQUENCE_CHARACTERS, dtype=np.uint8)] = 0
_BYTE_CLASS[np.frombuffer(WHITESPACE, dtype=np.uint8)] = 1
_BYTE_CLASS.setflags(write=False)

#: what needletail's sequences may hold when the file is fine but needs the line reader:
#: whitespace inside a sequence line, or a ';' / '#' comment line
_LINE_READER_BYTES = frozenset(WHITESPACE + b";#")
#: most records per block (for many tiny records, whatever the bases)
_BLOCK_RECORDS = 1 << 14


@dataclass
class _Block:
    """A run of parsed records."""

    ids: list
    lengths: np.ndarray
    seq: np.ndarray
    offsets: np.ndarray


class _NeedsLineReader(Exception):
    """The file (from some record on) uses what needletail does not parse by kmervae's rules."""


def _unexpected_character(path: Path, number: int, record_id: str, char: int) -> KmervaeError:
    shown = bytes([char]).decode("ascii", "backslashreplace")
    return KmervaeError(
        f"{path}: record {number} ({record_id}): unexpected character {shown!r} "
        f"(byte 0x{char:02x}) in the sequence: not a FASTA nucleotide file?"
    )


def _checked_block(path: Path, ids: list[str], seqs: list[str], first_number: int) -> _Block:
    """needletail's records as a block, checked by kmervae's rules (vectorised over the
    block); anything these checks cannot settle raises _NeedsLineReader."""
    names = "\n".join(ids)
    if "" in ids or any(c in names for c in " \t\r\v\f") or "\ufffd" in names:
        raise _NeedsLineReader  # no ID, a header word needletail did not split, or not UTF-8
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    text = "".join(seqs).encode("utf-8", "surrogateescape")
    if len(text) != offsets[-1]:
        raise _NeedsLineReader  # bytes that are not ASCII: reported by the line reader
    seq = np.frombuffer(text, dtype=np.uint8)
    unexpected = np.flatnonzero(_BYTE_CLASS[seq])
    if len(unexpected):
        at = int(unexpected[0])
        if text[at] in _LINE_READER_BYTES:
            raise _NeedsLineReader
        row = int(np.searchsorted(offsets, at, side="right")) - 1
        raise _unexpected_character(path, first_number + row, ids[row], text[at])
    return _Block(ids, lengths, seq, offsets)


def _needletail_blocks(path: Path, block_bases: int, where) -> Iterator[_Block]:
    """Blocks of about ``block_bases`` bases parsed by needletail (Rust).

    A file that does not start with '>' (an empty file, text before the first header)
    and one that needletail refuses (a header on the last line) need the line reader.
    """
    import needletail

    try:
        with open_fasta(path) as fh:
            if fh.read(1) != b">":
                raise _NeedsLineReader
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError):
        raise _NeedsLineReader from None  # the line reader reports the broken gzip stream
    compressed = _is_gzip(path)
    first_number = 1
    records = None
    while True:
        ids, seqs, bases = [], [], 0
        try:
            records = records or iter(needletail.parse_fastx_file(str(path)))
            for record in records:
                ids.append(record.name)
                seqs.append(record.seq)
                bases += len(seqs[-1])
                if bases >= block_bases or len(ids) >= _BLOCK_RECORDS:
                    break
        except needletail.NeedletailError as exc:
            if compressed and str(exc).startswith("I/O error"):
                last = f"record {first_number - 1 + len(ids)} ({ids[-1]})" if ids else where()
                raise KmervaeError(f"{path}: truncated or corrupt gzip data after {last} ({exc})") from None
            raise _NeedsLineReader from None
        if not ids:
            return
        yield _checked_block(path, ids, seqs, first_number)
        first_number += len(ids)


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def _lines(blocks: Iterator[bytes]) -> Iterator[bytes]:
    rest = b""
    for block in blocks:
        lines = (rest + block).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def _line_records(path: Path, block_size: int, where) -> Iterator[tuple[str, bytes]]:
    """(ID, sequence) per record, line by line in Python: every rule of the format (blank
    and comment lines, whitespace in sequence lines, text before the first header)."""
    record_id, parts, number = None, [], 0
    for line in _lines(_from_first_record(path, _read_blocks(path, block_size, where))):
        if line[:1] == b">":
            if record_id is not None:
                yield record_id, b"".join(parts)
            number += 1
            record_id, parts = _header_id(path, number, line), []
            continue
        stripped = line.lstrip(WHITESPACE)
        if not stripped or stripped[:1] in (b";", b"#"):
            continue
        bases = stripped.translate(None, WHITESPACE)
        unexpected = bases.translate(None, SEQUENCE_CHARACTERS)
        if unexpected:
            raise _unexpected_character(path, number, record_id, unexpected[0])
        parts.append(bases)
    if record_id is not None:
        yield record_id, b"".join(parts)


def _header_id(path: Path, number: int, line: bytes) -> str:
    words = line[1:].split(None, 1)
    if not words:
        raise KmervaeError(f"{path}: record {number}: the header line has no ID")
    try:
        return words[0].decode("utf-8")
    except UnicodeDecodeError:
        raise KmervaeError(f"{path}: record {number}: the header is not text (a binary file?)") from None


def _line_blocks(path: Path, block_size: int, where, skip: int) -> Iterator[_Block]:
    """Blocks of about ``block_size`` bases from the line reader, after the first ``skip`` records."""
    ids, seqs, bases = [], [], 0
    for number, (record_id, seq) in enumerate(_line_records(path, block_size, where), start=1):
        if number <= skip:
            continue
        ids.append(record_id)
        seqs.append(seq)
        bases += len(seq)
        if bases >= block_size or len(ids) >= _BLOCK_RECORDS:
            yield _bytes_block(ids, seqs)
            ids, seqs, bases = [], [], 0
    if ids:
        yield _bytes_block(ids, seqs)


def _bytes_block(ids: list[str], seqs: list[bytes]) -> _Block:
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return _Block(ids, lengths, np.frombuffer(b"".join(seqs), dtype=np.uint8), offsets)


def _file_blocks(path: Path, block_size: int, where) -> Iterator[_Block]:
    """The records of one file: needletail's, checked; from the first record needletail
    cannot settle on, the line reader's."""
    done = 0
    try:
        for block in _needletail_blocks(path, block_size, where):
            yield block
            done += len(block.ids)
        return
    except _NeedsLineReader:
        pass
    yield from _line_blocks(path, block_size, where, skip=done)


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
    call) is an error, checked with 8 bytes of memory per record. ``block_size`` is the
    bases per checked block (and the bytes per read of the line reader); it changes only
    speed and memory, never the records.
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

    for block in _file_blocks(path, block_size, where):
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
        for index, earlier in enumerate(self.paths[: file_index + 1]):
            for chunk in read_fasta_chunks(earlier, unique_ids=False):
                for n, earlier_id in enumerate(chunk.ids.tolist(), start=chunk.first_record):
                    if index == file_index and n >= number:
                        return  # only a hash collision
                    if earlier_id == record_id:
                        where = "" if index == file_index else f" of {earlier}"
                        raise KmervaeError(
                            f"{path}: record {number} ({record_id}): duplicate ID, already record {n}{where}"
                        )
