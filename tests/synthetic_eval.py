"""Synthetic k-mer stores and embeddings for the evaluation tests (no model needed).

Contigs come from a few "genomes", each with its own base composition, so neighbours
in a noisy linear projection of the CLR share a genome more often than not.
"""

import numpy as np

from kmervae.embed import EmbeddingsWriter
from kmervae.kmers import Layout, counts_to_clr
from kmervae.io.store import StoreWriter

LAYOUT = Layout.parse("4..1")


def make_data(
    tmp_path,
    n=300,
    latent=8,
    genomes=4,
    seed=0,
    splits=True,
    model_hash="hash-a",
    shuffle_emb=False,
    sample_of=None,
):
    """``sample_of(genome, rng)``: each contig's sample name from its genome (default: all "s1")."""
    rng = np.random.default_rng(seed)
    genome = rng.integers(0, genomes, size=n)
    profiles = rng.dirichlet(np.ones(LAYOUT.width) * 2, size=genomes)
    counts = np.stack(
        [
            rng.multinomial(3000, profiles[g] * 0.7 + 0.3 * rng.dirichlet(np.ones(LAYOUT.width)))
            for g in genome
        ]
    )
    counts = counts.astype(np.uint32)
    ids = np.array([f"contig_{i:04d}" for i in range(n)])
    split = np.where(np.arange(n) % 3 == 0, 2, 0).astype(np.int8) if splits else None
    sample = np.asarray(sample_of(genome, np.random.default_rng(seed + 1)) if sample_of else ["s1"] * n)
    extra = ("sample", "split") if splits else ()
    store = tmp_path / "store.zarr"
    with StoreWriter(store, LAYOUT, chunk_rows=64, extra=extra) as w:
        kw = {"sample": sample, "split": split} if splits else {}
        w.append(ids, np.full(n, 5000), counts, **kw)
    clr = counts_to_clr(counts, LAYOUT).astype(np.float64)
    z = clr @ rng.normal(size=(LAYOUT.width, latent)) / np.sqrt(LAYOUT.width) + 0.05 * rng.normal(
        size=(n, latent)
    )
    z = z.astype(np.float32)
    order = rng.permutation(n) if shuffle_emb else np.arange(n)
    emb = tmp_path / "emb.zarr"
    attrs = {
        "model_config_hash": model_hash,
        "model_dir": "m",
        "input": str(store),
        "input_ks": list(LAYOUT.ks),
    }
    with EmbeddingsWriter(emb, latent, attrs=attrs, extra=extra, chunk_rows=50) as w:
        kw = {"sample": sample[order], "split": split[order]} if splits else {}
        w.append(ids[order], np.full(n, 5000), z[order], **kw)
    labels = tmp_path / "labels.tsv"
    with open(labels, "w") as fh:
        fh.write("contig_id\tgenome\trecord\treplicon_type\tstart\tend\tlength\n")
        fh.writelines(
            f"{ids[i]}\tg{genome[i]}\trec{genome[i]}\t{'plasmid' if genome[i] == 0 else 'chromosome'}\t0\t5000\t5000\n"
            for i in range(n)
        )
    return {
        "store": store,
        "emb": emb,
        "labels": labels,
        "ids": ids,
        "counts": counts,
        "clr": clr,
        "z": z,
        "genome": genome,
        "split": split,
        "sample": sample,
        "order": order,
    }
