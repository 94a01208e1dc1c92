"""The k-mer counter against a brute-force oracle, and the `count` stage's store and errors."""

import gzip
import hashlib
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmervae.cli import main
from kmervae.count import MARGINAL_FROM_BASES, count_buffer, count_chunks, count_fasta, count_sequences
from kmervae.kmers import Layout, canonical_kmers
from kmervae.io.store import KmerStore

from fasta_oracle import naive_parse

COMPLEMENT = str.maketrans("ACGT", "TGCA")
LAYOUTS = [
    Layout(),
    Layout.parse("7..1"),
    Layout.parse("4"),
    Layout.parse("5..1"),
    Layout((6, 4)),
    Layout((2, 3)),
]


def brute_force_counts(seq: str, layout: Layout) -> list[int]:
    """Slide a window; skip windows with anything but ACGT; count min(kmer, revcomp)."""
    seq = seq.upper()
    row = []
    for k in layout.ks:
        counts = Counter()
        for i in range(len(seq) - k + 1):
            window = seq[i : i + k]
            if set(window) <= set("ACGT"):
                counts[min(window, window.translate(COMPLEMENT)[::-1])] += 1
        row += [counts[kmer] for kmer in canonical_kmers(k)]
    return row




# runs of ACGT broken by N runs, IUPAC codes, gaps; mixed case; lengths below and above k
# and on both sides of the short/long record strategy switch
pieces = st.one_of(
    st.text(alphabet="ACGT", min_size=1, max_size=40),
    st.text(alphabet="acgtACGT", min_size=1, max_size=12),
    st.text(alphabet="Nn", min_size=1, max_size=5),
    st.text(alphabet="RYKMSWBDHVN-.*", min_size=1, max_size=3),
)
sequences = st.lists(pieces, max_size=40).map("".join)
long_sequences = st.tuples(
    sequences,
    st.text(alphabet="ACGT", min_size=MARGINAL_FROM_BASES, max_size=MARGINAL_FROM_BASES + 50),
    sequences,
).map("".join)


def as_buffer(seqs):
    encoded = [s.encode() for s in seqs]
    offsets = np.r_[0, np.cumsum([len(s) for s in encoded])].astype(np.int64)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(sequences, long_sequences), max_size=6), st.sampled_from(LAYOUTS))
def test_counts_equal_brute_force(seqs, layout):
    expected = np.array([brute_force_counts(s, layout) for s in seqs], dtype=np.int64).reshape(
        len(seqs), layout.width
    )
    np.testing.assert_array_equal(count_sequences(seqs, layout), expected)
    # each strategy alone (short records: direct; long records: marginalisation) is exact too
    seq, offsets = as_buffer(seqs)
    np.testing.assert_array_equal(count_buffer(seq, offsets, layout, switch=1 << 40), expected)
    np.testing.assert_array_equal(count_buffer(seq, offsets, layout, switch=0), expected)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.one_of(sequences, long_sequences), min_size=1, max_size=24), st.sampled_from(LAYOUTS))
def test_threads_give_identical_counts(seqs, layout):
    seq, offsets = as_buffer(seqs)
    one = count_buffer(seq, offsets, layout, threads=1)
    np.testing.assert_array_equal(count_buffer(seq, offsets, layout, threads=2), one)


def test_short_records_below_k_and_strategy_switch():
    layout = Layout()
    seqs = ["", "A", "ACGTA", "ACGTAC", "NNNN", "ACGTNACGTNACGTNA", "AC" * MARGINAL_FROM_BASES]
    got = count_sequences(seqs, layout)
    assert got.dtype == np.uint32 and got.shape == (len(seqs), 2772)
    np.testing.assert_array_equal(got, [brute_force_counts(s, layout) for s in seqs])
    assert not got[:2, : layout.group(2).start].any()  # nothing longer than the sequence


def write_fasta(path, records, width=7, compress=False):
    text = "".join(
        f">{rid} desc\n" + "".join(seq[a : a + width] + "\n" for a in range(0, len(seq), width))
        for rid, seq in records
    )
    path.write_bytes(gzip.compress(text.encode()) if compress else text.encode())
    return path


def test_count_fasta_store_matches_brute_force(tmp_path, test_data):
    source = test_data / "edgecases_vamb_test.fna"
    out = count_fasta([source], tmp_path / "edge.zarr", chunk_rows=4)
    store = KmerStore(out)
    records = naive_parse(source.read_text())
    assert list(store.ids()) == [r[0] for r in records]
    np.testing.assert_array_equal(store.lengths(), [len(r[1]) for r in records])
    np.testing.assert_array_equal(store.rows(), [brute_force_counts(r[1], Layout()) for r in records])
    attrs = store.attrs
    assert attrs["format"] == "kmervae-kmers" and attrs["matrix"] == "counts"
    assert attrs["groups"] == Layout().to_attrs() and attrs["sample"] == "edge"
    assert attrs["sources"] == [
        {"path": str(source), "sha256": hashlib.sha256(source.read_bytes()).hexdigest(), "records": 6}
    ]
    assert attrs["empty_records"] == 1 and attrs["records"] == 6 and attrs["n"] == 6
    assert attrs["bases"] == sum(len(r[1]) for r in records)
    assert "tool_version" in attrs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edge.zarr"]


def test_chunking_threads_and_gzip_do_not_change_the_store(tmp_path):
    rng = np.random.default_rng(5)
    records = [
        (f"c{i}", "".join(rng.choice(list("ACGTN"), p=[0.24, 0.24, 0.24, 0.24, 0.04], size=int(n))))
        for i, n in enumerate(rng.integers(0, 1500, size=23))
    ]
    plain = write_fasta(tmp_path / "a.fa", records[:15])
    packed = write_fasta(tmp_path / "b.fa", records[15:], compress=True)
    layout = Layout.parse("5..1")
    # small chunks: output matrices are reused, rows regrouped across file boundaries
    whole = KmerStore(count_fasta([plain, packed], tmp_path / "whole.zarr", layout=layout, chunk_rows=1000))
    one = KmerStore(count_fasta([plain, packed], tmp_path / "one.zarr", layout=layout, chunk_rows=4))
    two = KmerStore(
        count_fasta([plain, packed], tmp_path / "two.zarr", layout=layout, threads=2, chunk_rows=4)
    )
    expected = [brute_force_counts(s, layout) for _, s in records]
    for store in (whole, one, two):
        assert list(store.ids()) == [r for r, _ in records]
        np.testing.assert_array_equal(store.rows(), expected)
    assert [s["records"] for s in two.attrs["sources"]] == [15, 8]
    for array in ("counts", "id", "length"):  # the same files, byte for byte, whatever the threads
        files = sorted(p.relative_to(one.path) for p in (one.path / array).rglob("*") if p.is_file())
        assert files and all((one.path / f).read_bytes() == (two.path / f).read_bytes() for f in files)
    parts = list(count_chunks([plain, packed], layout, threads=2, chunk_records=6))
    assert [len(ids) for ids, _, _ in parts] == [6, 6, 3, 6, 2]  # chunks never span two files
    np.testing.assert_array_equal(np.concatenate([c for _, _, c in parts]), expected)


def test_cli_count_with_seven_mers(tmp_path, test_data, capsys):
    out = tmp_path / "s.zarr"
    source = test_data / "edgecases_vamb_test.fna"
    assert (
        main(["count", str(source), "-o", str(out), "--k", "7..1", "--sample", "lake", "--threads", "2"]) == 0
    )
    store = KmerStore(out)
    assert store.layout == Layout.parse("7..1") and store.attrs["sample"] == "lake"
    records = naive_parse(source.read_text())
    np.testing.assert_array_equal(store.rows(), [brute_force_counts(r[1], store.layout) for r in records])
    assert "6 records" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"\x00\x01\x02binary" * 100, "not FASTA (a binary file"),
        (b"just some text\n", "not FASTA (text without a leading '>': 'just some text'"),
        (
            "# Notes\n\nDéjà vu — k-mers\n".encode(),
            "not FASTA (text without a leading '>': 'Déjà vu — k-mers'",
        ),
        (b">a\nACGT\n>b\nAC\n>a\nGG\n", "record 3 (a): duplicate ID, already record 1"),
        (
            gzip.compress(b"".join(b">r%d\nACGT\n" % i for i in range(20000)))[:5000],
            "truncated or corrupt gzip",
        ),
    ],
)
def test_cli_bad_input_one_line_exit_2_no_output(tmp_path, capsys, content, problem):
    bad = tmp_path / "in.fa"
    bad.write_bytes(content)
    good = write_fasta(tmp_path / "good.fa", [("g", "ACGT")])
    out = tmp_path / "out" / "s.zarr"
    assert main(["count", str(good), str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"kmervae: error: {bad}: ") and problem in err and "\n" not in err
    assert not out.exists() and list((tmp_path / "out").iterdir()) == []


def test_cli_missing_file_and_duplicates_across_files(tmp_path, capsys):
    good = write_fasta(tmp_path / "good.fa", [("g", "ACGT")])
    out = tmp_path / "s.zarr"
    assert main(["count", str(good), str(tmp_path / "nope.fa"), "-o", str(out)]) == 2
    assert "nope.fa: no such file" in capsys.readouterr().err
    assert main(["count", str(good), str(good), "-o", str(out)]) == 2
    assert "record 1 (g): duplicate ID, already record 1 of" in capsys.readouterr().err
    assert not out.exists()


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.lists(st.text(alphabet="ACGTN", max_size=30), min_size=1, max_size=9), min_size=1, max_size=3
    ),
    st.integers(1, 5),
    st.integers(1, 60),
    st.sampled_from([1, 2]),
)
def test_store_chunks_any_split_of_files_chunks_and_threads(
    tmp_path_factory, files, chunk_rows, bases, threads
):
    """FASTA chunks (cut by records or bases) straddle store chunks and files in every way."""
    tmp = tmp_path_factory.mktemp("split")
    layout = Layout.parse("3..1")
    records, paths = [], []
    for f, seqs in enumerate(files):
        file_records = [(f"f{f}r{i}", s) for i, s in enumerate(seqs)]
        paths.append(write_fasta(tmp / f"{f}.fa", file_records, compress=f == 1))
        records += file_records
    store = KmerStore(
        count_fasta(paths, tmp / "s.zarr", layout, threads=threads, chunk_rows=chunk_rows, chunk_bases=bases)
    )
    assert store.chunk_rows == chunk_rows and store.n == len(records)
    assert list(store.ids()) == [r for r, _ in records]
    np.testing.assert_array_equal(store.lengths(), [len(s) for _, s in records])
    np.testing.assert_array_equal(
        store.rows(), np.reshape([brute_force_counts(s, layout) for _, s in records], (-1, layout.width))
    )


def test_empty_records_are_kept_and_warned_about(tmp_path, caplog):
    path = write_fasta(tmp_path / "e.fa", [("a", "ACGT"), ("b", ""), ("c", "NNNN"), ("d", "")])
    with caplog.at_level("WARNING", logger="kmervae"):
        store = KmerStore(count_fasta([path], tmp_path / "e.zarr"))
    assert store.attrs["empty_records"] == 2
    assert "2 record(s) without sequence" in caplog.text
    np.testing.assert_array_equal(store.lengths(), [4, 0, 4, 0])
    assert not store.rows()[1:].any() and store.rows()[0].sum() > 0


def test_default_chunk_rows_keep_chunks_near_45_mb(tmp_path, test_data):
    from kmervae.count import default_chunk_rows

    assert default_chunk_rows(Layout()) == 4096 and default_chunk_rows(Layout.parse("5..1")) == 4096
    assert default_chunk_rows(Layout.parse("7..1")) == 1024
    store = KmerStore(
        count_fasta([test_data / "edgecases_vamb_test.fna"], tmp_path / "s.zarr", Layout.parse("7..1"))
    )
    assert store.chunk_rows == 1024
