"""The streaming FASTA reader: formats it accepts, chunking, and one-line errors for bad input."""

import gzip
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmervae.io import fasta
from kmervae.errors import KmervaeError
from kmervae.io.fasta import read_fasta_chunks

from fasta_oracle import naive_parse


def records_of(paths, **kw):
    """(id, sequence) pairs from the reader, flattened over chunks."""
    out = []
    for chunk in read_fasta_chunks(paths, **kw):
        assert len(chunk.offsets) == len(chunk) + 1
        np.testing.assert_array_equal(np.diff(chunk.offsets), chunk.lengths)
        for i, record_id in enumerate(chunk.ids):
            out.append((str(record_id), bytes(chunk.seq[chunk.offsets[i] : chunk.offsets[i + 1]]).decode()))
    return out




def test_vamb_edge_cases(test_data):
    path = test_data / "edgecases_vamb_test.fna"
    got = records_of(path)
    assert got == naive_parse(path.read_text())
    assert [r[0] for r in got] == [
        f"Sequence{i}" if i > 1 else "Sequence1_100nt_no_special" for i in range(1, 7)
    ]
    assert [len(r[1]) for r in got] == [100, 100, 150, 99, 0, 150]


def test_messy_but_valid_fasta(tmp_path):
    text = (
        "\r\n; a leading comment\r\n\r\n"
        ">one first record\r\nacgtN\r\n\r\nAC GT\r\n"
        "# comment inside\r\n"
        ">two\r\n"
        ">three\tdesc\r\nGGGG\r\n;x\r\nccc"
    )
    path = tmp_path / "messy.fa"
    path.write_bytes(text.encode())
    assert records_of(path) == [("one", "acgtNACGT"), ("two", ""), ("three", "GGGGccc")]


def test_gzip_is_detected_by_magic_bytes_not_suffix(tmp_path, test_data):
    source = test_data / "edgecases_vamb_test.fna"
    hidden_gzip = tmp_path / "compressed.fa"  # gzip without .gz
    hidden_gzip.write_bytes(gzip.compress(source.read_bytes()))
    plain_named_gz = tmp_path / "plain.fa.gz"  # plain text with .gz
    shutil.copy(source, plain_named_gz)
    expected = records_of(source)
    assert records_of(hidden_gzip) == expected
    assert records_of(plain_named_gz) == expected


@st.composite
def fasta_texts(draw):
    n = draw(st.integers(1, 6))
    records = []
    for i in range(n):
        seq = draw(st.text(alphabet="ACGTNacgtnRYK-", max_size=60))
        records.append((f"r{i}", seq))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    width = draw(st.integers(1, 25))
    parts = []
    for record_id, seq in records:
        parts.append(f">{record_id} some description{newline}")
        for a in range(0, len(seq), width):
            parts.append(seq[a : a + width] + newline)
            if draw(st.booleans()) and draw(st.booleans()):
                parts.append(draw(st.sampled_from(["", "; comment", "# comment", "   "])) + newline)
    return records, "".join(parts)


@settings(max_examples=60, deadline=None)
@given(fasta_texts(), st.integers(1, 40), st.integers(1, 4), st.integers(1, 80), st.booleans())
def test_chunking_and_block_boundaries_never_change_records(
    tmp_path_factory, case, block, chunk_records, chunk_bases, gz
):
    records, text = case
    path = tmp_path_factory.mktemp("fa") / "x.fa"
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    chunks = list(
        read_fasta_chunks(path, chunk_records=chunk_records, chunk_bases=chunk_bases, block_size=block)
    )
    assert all(len(c) <= chunk_records for c in chunks)
    assert [c.first_record for c in chunks] == list(np.cumsum([1] + [len(c) for c in chunks[:-1]]))
    got = records_of(path, chunk_records=chunk_records, chunk_bases=chunk_bases, block_size=block)
    assert got == records


@pytest.mark.parametrize("gz", [False, True])
def test_needletail_hands_over_to_the_line_reader_without_losing_a_record(tmp_path, monkeypatch, gz):
    """Clean files are parsed by needletail alone; from the first record with a comment
    line or spaces in a sequence line on, the line reader reads the rest."""
    calls = []
    line_records = fasta._line_records
    monkeypatch.setattr(fasta, "_line_records", lambda *a: calls.append(a[0]) or line_records(*a))
    clean = "".join(f">r{i} desc\r\n{'ACGTN' * i}\r\nacg\r\n" for i in range(12))
    messy = clean + ">m1\nAC GT\n# note\nGG\n>m2\n\n  ; x\nTT\n" + clean.replace(">r", ">s")
    for name, text, reader_calls in (("clean.fa", clean, 0), ("messy.fa", messy, 1)):
        path = tmp_path / name
        path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
        calls.clear()
        assert records_of(path, block_size=20, chunk_records=5) == naive_parse(text)
        assert len(calls) == reader_calls


# -- bad input: one line naming file, record and problem ------------------------------------


def error_of(paths, **kw) -> str:
    with pytest.raises(KmervaeError) as info:
        records_of(paths, **kw)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_file_and_directory(tmp_path):
    assert "no such file" in error_of(tmp_path / "missing.fa")
    assert "directory" in error_of(tmp_path)


def test_not_fasta(tmp_path):
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 10)
    assert "not FASTA (a binary file" in error_of(binary)
    text = tmp_path / "table.tsv"
    text.write_text("id\tlength\nx\t10\n")
    message = error_of(text)
    assert str(text) in message and "not FASTA" in message
    empty = tmp_path / "empty.fa"
    empty.write_text("")
    assert "no FASTA records" in error_of(empty)


def test_utf8_text_is_not_fasta_text_not_binary(tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("# kmervae — notes\n\nThe café counts k-mers.\n", encoding="utf-8")
    assert error_of(notes) == (
        f"{notes}: not FASTA (text without a leading '>': 'The café counts k-mers.' "
        "comes before any '>' header line)"
    )
    # a two-byte character cut in half by the end of the 4096-byte sample is still text
    cut = tmp_path / "cut.md"
    cut.write_bytes(b"#" + b"x" * 4094 + "é\nplain words\n".encode())
    assert "(text without a leading '>': 'plain words'" in error_of(cut)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café\n".encode("latin-1"))
    assert "not FASTA (a binary file;" in error_of(latin1)  # not UTF-8: not text


def test_truncated_and_corrupt_gzip(tmp_path, test_data):
    data = gzip.compress((test_data / "edgecases_vamb_test.fna").read_bytes() * 50)
    truncated = tmp_path / "truncated.fa.gz"
    truncated.write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt gzip" in error_of(truncated, block_size=1000)
    corrupt = tmp_path / "corrupt.fa.gz"
    corrupt.write_bytes(data[:40] + bytes(200) + data[240:])
    message = error_of(corrupt)
    assert str(corrupt) in message and "gzip" in message


def test_duplicate_id_within_and_across_files(tmp_path):
    a = tmp_path / "a.fa"
    a.write_text(">x\nACGT\n>y desc\nAC\n>x other\nGG\n")
    assert error_of(a) == f"{a}: record 3 (x): duplicate ID, already record 1"
    b = tmp_path / "b.fa"
    b.write_text(">z\nAC\n>y\nAC\n")
    a.write_text(">x\nACGT\n>y\nAC\n")
    # across chunks of one file and across files
    assert error_of([a, b], chunk_records=1) == f"{b}: record 2 (y): duplicate ID, already record 2 of {a}"
    assert records_of([a, b], unique_ids=False)[-1] == ("y", "AC")


def test_hash_collisions_are_confirmed_not_reported(tmp_path, monkeypatch):
    """With every ID hashing alike, only a true duplicate may raise."""
    monkeypatch.setattr(fasta, "_id_hash", lambda record_id: 7)
    a = tmp_path / "a.fa"
    a.write_text("".join(f">r{i}\nAC\n" for i in range(10)))
    assert len(records_of(a, chunk_records=3)) == 10
    a.write_text("".join(f">r{i}\nAC\n" for i in range(10)) + ">r4\nA\n")
    assert error_of(a, chunk_records=3) == f"{a}: record 11 (r4): duplicate ID, already record 5"
    assert error_of(a, chunk_records=20) == f"{a}: record 11 (r4): duplicate ID, already record 5"


def test_unexpected_characters_and_missing_ids(tmp_path):
    bad = tmp_path / "bad.fa"
    bad.write_text(">a\nACGT\n>b\nAC1GT\n")
    assert error_of(bad) == (
        f"{bad}: record 2 (b): unexpected character '1' (byte 0x31) in the sequence: "
        "not a FASTA nucleotide file?"
    )
    no_id = tmp_path / "noid.fa"
    no_id.write_text(">a\nACGT\n>  \nAC\n")
    assert error_of(no_id) == f"{no_id}: record 2: the header line has no ID"


def test_header_that_is_not_text_and_other_compressions(tmp_path):
    latin = tmp_path / "latin.fa"
    latin.write_bytes(b">ok\nACGT\n>caf\xe9 x\nAC\n")
    assert error_of(latin) == f"{latin}: record 2: the header is not text (a binary file?)"
    bz = tmp_path / "x.fa.bz2"
    bz.write_bytes(b"BZh91AY&SY" + bytes(50))
    assert "bzip2-compressed files are not supported" in error_of(bz)
