"""chop: seeded fragments that tile each record, their labels, and reproducible outputs."""

import gzip

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmervae.chop import LABEL_COLUMNS, chop_genomes, fragment_lengths, genome_name_of, tile
from kmervae.cli import main
from kmervae.errors import KmervaeError


def random_sequence(rng, n):
    return "".join(rng.choice(list("ACGT"), size=n))


def write_fasta(path, records):
    text = "".join(
        f">{header}\n" + "\n".join(seq[i : i + 60] for i in range(0, len(seq), 60)) + "\n"
        for header, seq in records
    )
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)


def read_fasta(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    records, name = {}, None
    with opener(path, "rt") as fh:
        for line in fh:
            line = line.strip()
            if line.startswith(">"):
                name = line[1:].split()[0]
                records[name] = []
            else:
                records[name].append(line)
    return {k: "".join(v) for k, v in records.items()}


@pytest.fixture
def genomes(tmp_path):
    rng = np.random.default_rng(0)
    records = {
        "chr1": random_sequence(rng, 120_000),
        "p1": random_sequence(rng, 9_000),
        "tiny": random_sequence(rng, 700),
        "vir": random_sequence(rng, 30_000),
    }
    write_fasta(
        tmp_path / "bugA.fna.gz",
        [
            ("chr1 Bug A chromosome", records["chr1"]),
            ("p1 Bug A plasmid pA1, complete sequence", records["p1"]),
            ("tiny something short", records["tiny"]),
        ],
    )
    write_fasta(tmp_path / "phiX.fa", [("vir Enterobacteria phage X", records["vir"])])
    return tmp_path, records


def test_fragments_tile_records_and_labels_match(genomes):
    tmp, records = genomes
    chop_genomes(
        [tmp / "bugA.fna.gz", tmp / "phiX.fa"],
        tmp / "frag.fa.gz",
        tmp / "labels.tsv",
        seed=5,
        min_length=1000,
        max_length=8000,
        median=3000,
    )
    fragments = read_fasta(tmp / "frag.fa.gz")
    labels = pd.read_csv(tmp / "labels.tsv", sep="\t")
    assert tuple(labels.columns) == LABEL_COLUMNS
    assert list(labels.contig_id) == list(fragments)  # same fragments, same order
    for row in labels.itertuples():
        source = records[row.record]
        assert fragments[row.contig_id] == source[row.start - 1 : row.end]  # oracle: plain slicing
        assert (
            row.contig_id == f"{row.record}_{row.start}-{row.end}" and row.length == row.end - row.start + 1
        )
        assert 1000 <= row.length <= 8000
    for record, group in labels.groupby("record", sort=False):
        # contiguous from the first base; what is left over is shorter than the minimum
        assert group.start.iloc[0] == 1 and (group.start.values[1:] == group.end.values[:-1] + 1).all()
        assert len(records[record]) - group.end.iloc[-1] < 1000
    assert "tiny" not in set(labels.record)  # shorter than min_length: no fragment
    types = labels.groupby("record").replicon_type.first().to_dict()
    assert types == {"chr1": "chromosome", "p1": "plasmid", "vir": "phage"}
    assert set(labels.genome) == {"bugA", "phiX"}


def test_same_seed_same_bytes_and_records_are_independent(genomes):
    tmp, _ = genomes
    a = chop_genomes([tmp / "bugA.fna.gz"], tmp / "a.fa.gz", tmp / "a.tsv", seed=1)
    b = chop_genomes([tmp / "bugA.fna.gz"], tmp / "b.fa.gz", tmp / "b.tsv", seed=1)
    assert a[0].read_bytes() == b[0].read_bytes() and a[1].read_text() == b[1].read_text()
    c = chop_genomes([tmp / "bugA.fna.gz"], tmp / "c.fa.gz", tmp / "c.tsv", seed=2)
    assert a[1].read_text() != c[1].read_text()
    # adding a genome does not move the fragments of the first one
    chop_genomes([tmp / "phiX.fa", tmp / "bugA.fna.gz"], tmp / "d.fa", tmp / "d.tsv", seed=1)
    first = pd.read_csv(a[1], sep="\t")
    both = pd.read_csv(tmp / "d.tsv", sep="\t")
    pd.testing.assert_frame_equal(both[both.genome == "bugA"].reset_index(drop=True), first)


def test_length_distributions(tmp_path):
    rng = np.random.default_rng(3)
    write_fasta(tmp_path / "big.fa", [(f"c{i}", random_sequence(rng, 500_000)) for i in range(4)])
    chop_genomes([tmp_path / "big.fa"], tmp_path / "ln.fa", tmp_path / "ln.tsv", median=4000, sigma=1.0)
    lengths = pd.read_csv(tmp_path / "ln.tsv", sep="\t").length.to_numpy()
    assert 250 < len(lengths) and abs(np.median(lengths) / 4000 - 1) < 0.2  # clipping keeps the median
    assert lengths.min() >= 1000 and lengths.max() <= 50_000 and np.mean(lengths == 1000) > 0.03
    chop_genomes(
        [tmp_path / "big.fa"],
        tmp_path / "lu.fa",
        tmp_path / "lu.tsv",
        distribution="loguniform",
        min_length=1000,
        max_length=20_000,
    )
    logs = np.log(pd.read_csv(tmp_path / "lu.tsv", sep="\t").length.to_numpy())
    assert abs(np.mean(logs) - (np.log(1000) + np.log(20_000)) / 2) < 0.15


def test_names_types_and_errors(genomes, capsys):
    tmp, _ = genomes
    assert genome_name_of("x/Ecoli_K12.fasta.gz") == "Ecoli_K12"
    code = main(
        [
            "chop",
            str(tmp / "bugA.fna.gz"),
            "-o",
            str(tmp / "o.fa"),
            "--labels",
            str(tmp / "o.tsv"),
            "--genome-names",
            "A",
            "--replicon-type",
            "chr1=phage",
        ]
    )
    assert code == 0 and "fragments" in capsys.readouterr().out
    labels = pd.read_csv(tmp / "o.tsv", sep="\t")
    assert set(labels.genome) == {"A"}
    assert labels.groupby("record").replicon_type.first().to_dict() == {"chr1": "phage", "p1": "plasmid"}
    with pytest.raises(KmervaeError, match="replicon types"):
        chop_genomes([tmp / "phiX.fa"], tmp / "x.fa", tmp / "x.tsv", replicon_types={"vir": "virus"})
    assert not (tmp / "x.fa").exists() and not (tmp / "x.tsv").exists()
    assert (
        main(
            [
                "chop",
                str(tmp / "phiX.fa"),
                str(tmp / "phiX.fa"),
                "-o",
                str(tmp / "y.fa"),
                "--labels",
                str(tmp / "y.tsv"),
            ]
        )
        == 2
    )  # duplicate record IDs
    assert not (tmp / "y.fa").exists()


def test_demo_genomes_chop_with_their_replicon_types(demo_dir, tmp_path):
    chop_genomes(
        [demo_dir / "lambda.fa.gz", demo_dir / "kutzneria_sp744_scaffold.fa.gz"],
        tmp_path / "f.fa",
        tmp_path / "l.tsv",
        seed=42,
    )
    labels = pd.read_csv(tmp_path / "l.tsv", sep="\t")
    assert labels.groupby("genome").replicon_type.first().to_dict() == {
        "lambda": "phage",
        "kutzneria_sp744_scaffold": "chromosome",
    }
    assert labels[labels.genome == "lambda"].length.sum() > 48502 - 1000


@settings(max_examples=60, deadline=None)
@given(
    record_length=st.integers(0, 30_000),
    seed=st.integers(0, 2**32 - 1),
    min_length=st.integers(1, 3000),
    span=st.integers(0, 10_000),
    distribution=st.sampled_from(["lognormal", "loguniform"]),
)
def test_tiles_are_contiguous_bounded_and_drop_only_a_short_tail(
    record_length, seed, min_length, span, distribution
):
    max_length = min_length + span
    rng = np.random.default_rng(seed)
    lengths = fragment_lengths(rng, distribution, min_length, max_length, 2000, 1.0)
    pieces = tile(record_length, lengths, min_length)
    if pieces:  # contiguous from the first base
        assert [start for start, _ in pieces] == [0] + [end for _, end in pieces[:-1]]
    assert all(min_length <= end - start <= max_length for start, end in pieces)
    covered = pieces[-1][1] if pieces else 0
    assert 0 <= record_length - covered < min_length  # only a tail shorter than the minimum is dropped
