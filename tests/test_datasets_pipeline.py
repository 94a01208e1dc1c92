"""chop → count → select → merge → export/import on the shipped demo genomes, end to end.

Oracle: GC fraction and length of every fragment recomputed from the chopped FASTA text
with plain string counting, independent of the counting kernel and of the stores.
"""

import gzip

import numpy as np
import pandas as pd

from kmervae.chop import chop_genomes
from kmervae.count import count_fasta
from kmervae.kmers import Layout, gc_fraction
from kmervae.io.legacy import export_legacy, import_legacy
from kmervae.merge import merge_stores
from kmervae.select import select_min_length
from kmervae.io.store import KmerStore


def fasta_gc(path):
    gc, name = {}, None
    with gzip.open(path, "rt") as fh:
        text = {}
        for line in fh:
            if line.startswith(">"):
                name = line[1:].split()[0]
                text[name] = []
            else:
                text[name].append(line.strip().upper())
    for name, parts in text.items():
        seq = "".join(parts)
        acgt = sum(seq.count(b) for b in "ACGT")
        gc[name] = (sum(seq.count(b) for b in "GC") / acgt, len(seq))
    return gc


def test_demo_pipeline_keeps_every_fragment_with_its_composition(demo_dir, tmp_path):
    layout = Layout.parse("2..1")
    samples = {"phage": ["lambda.fa.gz"], "highgc": ["kutzneria_sp744_scaffold.fa.gz"]}
    oracle = {}
    for sample, files in samples.items():
        chop_genomes(
            [demo_dir / f for f in files],
            tmp_path / f"{sample}.fa.gz",
            tmp_path / f"{sample}.tsv",
            seed=1,
            median=2500,
            max_length=8000,
        )
        count_fasta([tmp_path / f"{sample}.fa.gz"], tmp_path / f"{sample}.zarr", layout=layout, chunk_rows=4)
        select_min_length(tmp_path / f"{sample}.zarr", tmp_path / f"{sample}.min2000.zarr", 2000)
        oracle.update({(sample, k): v for k, v in fasta_gc(tmp_path / f"{sample}.fa.gz").items()})
    merged = merge_stores(
        [tmp_path / "phage.min2000.zarr", tmp_path / "highgc.min2000.zarr"],
        tmp_path / "d.zarr",
        fractions=(0.5, 0.5),
        seed=3,
    )
    d = KmerStore(merged)
    keys = list(zip(np.asarray(d.array("sample")[:], dtype=object).astype(str), d.ids()))
    expected = {key for key, (_, length) in oracle.items() if length >= 2000}
    assert set(keys) == expected and len(keys) == len(expected) > 10
    gc = gc_fraction(d.rows(), layout)
    for key, value, length in zip(keys, gc, d.lengths()):
        assert abs(value - oracle[key][0]) < 1e-6 and length == oracle[key][1]
    assert abs(len(d.split_index("train")) - len(d.split_index("validation"))) <= 1  # exact halves
    labels = pd.concat([pd.read_csv(tmp_path / f"{s}.tsv", sep="\t") for s in samples])
    assert set(labels[labels.length >= 2000].contig_id) == {i for _, i in keys}

    npy, ids = export_legacy(merged, tmp_path / "d.npy", tmp_path / "d_ids.txt")
    back = KmerStore(import_legacy(npy, ids, tmp_path / "back.zarr", layout))
    np.testing.assert_array_equal(back.rows(), d.freq())
    np.testing.assert_allclose(gc_fraction(back.rows(), layout), gc, rtol=1e-6)
