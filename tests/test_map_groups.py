"""Sample groups on the map: every contig of their samples, density difference, composition, overlay.

Oracles: the store read with zarr directly (which rows belong to the groups' samples),
numpy's histogram2d of the coordinates as written in map.tsv, and cluster x group counts
recomputed from map.tsv with collections.Counter.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
import zarr
from synthetic_eval import make_data

from kmervae.cli import main
from kmervae.errors import KmervaeError
from kmervae.evaluate.map import map_embeddings
from kmervae.evaluate.map_groups import DENSITY_BINS, group_arguments, overlay_rgb, parse_group_options

GROUPS = {"aquatic": ["aq1", "aq2"], "terrestrial": ["soil1", "soil2"]}
FAST = dict(sample=0, n_iter=40, early_exaggeration_iter=20, min_cluster_size=8, min_samples=4)


def sample_of(genome, rng):
    """Genomes 0 and 1 mostly aquatic, 2 and 3 mostly terrestrial; a tenth of the contigs in
    a sample no group names."""
    aquatic = (genome < 2) ^ (rng.random(len(genome)) < 0.2)
    n = len(genome)
    names = np.where(aquatic, rng.choice(["aq1", "aq2"], n), rng.choice(["soil1", "soil2"], n))
    return np.where(rng.random(n) < 0.1, "mock", names)


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("groups")
    data = make_data(tmp, n=240, genomes=4, sample_of=sample_of)
    out = tmp / "map"
    numbers = map_embeddings(
        data["emb"], out, store=data["store"], labels=data["labels"], groups=GROUPS, **FAST
    )
    table = pd.read_csv(out / "map.tsv", sep="\t", dtype={"id": str, "sample": str, "cluster": int})
    return {**data, "out": out, "numbers": numbers, "table": table}


def test_group_map_covers_every_contig_of_the_groups_samples(grouped):
    table = grouped["table"]
    assert list(table.columns) == ["sample", "group", "id", "length", "x", "y", "gc", "cluster", "label"]
    store = zarr.open_group(str(grouped["store"]), mode="r")
    ids = np.asarray(store["id"][:], dtype=object).astype(str)
    samples = np.asarray(store["sample"][:], dtype=object).astype(str)
    splits = np.asarray(store["split"][:])
    chosen = np.isin(samples, sum(GROUPS.values(), []))
    assert 0 < chosen.sum() < len(ids) and len(np.unique(splits[chosen])) == 2  # train and test rows
    assert sorted(table["id"]) == sorted(ids[chosen]) and table["id"].is_unique
    assert grouped["numbers"]["n"] == chosen.sum() and grouped["numbers"]["split"] == "all"
    row_of = {i: r for r, i in enumerate(ids)}
    rows = np.array([row_of[i] for i in table["id"]])
    assert (table["sample"].to_numpy() == samples[rows]).all()
    np.testing.assert_array_equal(table["length"], np.asarray(store["length"][:])[rows])
    group = {s: g for g, members in GROUPS.items() for s in members}
    assert list(table["group"]) == [group[s] for s in table["sample"]]
    counts = grouped["counts"][rows].astype(np.float64)
    np.testing.assert_allclose(table["gc"], counts[:, -1] / counts[:, -2:].sum(axis=1), rtol=1e-5)
    assert list(table["label"]) == [f"g{g}" for g in grouped["genome"][rows]]
    per_group = {g: v["contigs"] for g, v in grouped["numbers"]["groups"].items()}
    assert per_group == dict(Counter(table["group"]))


def test_density_difference_is_the_difference_of_normalised_histograms(grouped):
    table = grouped["table"]
    xy = table[["x", "y"]].to_numpy()
    bins = grouped["numbers"]["density_bins"]
    assert 10 <= bins <= DENSITY_BINS
    edges = [np.linspace(xy[:, a].min(), xy[:, a].max(), bins + 1) for a in (0, 1)]
    fraction = {}
    for name in GROUPS:
        member = (table["group"] == name).to_numpy()
        hist, _, _ = np.histogram2d(xy[member, 0], xy[member, 1], bins=edges)
        fraction[name] = hist / member.sum()
    written = pd.read_csv(grouped["out"] / "map_density_aquatic_vs_terrestrial.tsv", sep="\t")
    assert len(written) == bins**2
    # rows: x bin major, then y bin
    grid = {c: written[c].to_numpy().reshape(bins, bins) for c in written.columns}
    np.testing.assert_allclose(grid["x_lo"][:, 0], edges[0][:-1], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(grid["y_hi"][0], edges[1][1:], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(grid["fraction_aquatic"], fraction["aquatic"], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(grid["fraction_terrestrial"], fraction["terrestrial"], rtol=1e-5, atol=1e-9)
    expected = fraction["aquatic"] - fraction["terrestrial"]
    np.testing.assert_allclose(grid["difference"], expected, rtol=1e-5, atol=1e-9)
    assert np.abs(expected).max() > 0  # the groups do lie in different places
    (pair,) = grouped["numbers"]["pairs"]
    assert pair["max_abs_difference"] == pytest.approx(np.abs(expected).max())
    for name in (
        "map_density_aquatic_vs_terrestrial",
        "map_overlay_aquatic_vs_terrestrial",
        "map_composition",
    ):
        assert (grouped["out"] / f"{name}.png").exists() and (grouped["out"] / f"{name}.pdf").exists()


def test_composition_counts_each_group_per_cluster_with_noise_last(grouped):
    table = grouped["table"]
    counts = Counter(zip(table["cluster"], table["group"]))
    sizes = Counter(table["cluster"])
    written = pd.read_csv(grouped["out"] / "map_composition.tsv", sep="\t", dtype={"cluster": str})
    assert list(written.columns) == [
        "cluster", "n", "n_aquatic", "n_terrestrial", "fraction_aquatic", "fraction_terrestrial"
    ]  # fmt: skip
    order = sorted(c for c in sizes if c >= 0) + ([-1] if -1 in sizes else [])
    assert list(written["cluster"]) == [("noise" if c < 0 else str(c)) for c in order]
    assert len(order) >= 3  # several clusters (and the test sees whether noise is there)
    for row, c in zip(written.itertuples(), order):
        assert row.n == sizes[c]
        assert (row.n_aquatic, row.n_terrestrial) == (counts[(c, "aquatic")], counts[(c, "terrestrial")])
        assert row.fraction_aquatic == pytest.approx(counts[(c, "aquatic")] / sizes[c], rel=1e-5)
        assert row.fraction_terrestrial == pytest.approx(counts[(c, "terrestrial")] / sizes[c], rel=1e-5)
    assert written["n"].sum() == len(table)


def test_overlay_is_cyan_yellow_and_green_where_both_groups_lie():
    rng = np.random.default_rng(1)
    centres = {"a_only": (-10, 0), "b_only": (10, 0), "both": (0, 10)}
    blobs = {name: rng.normal(c, 0.3, size=(200, 2)) for name, c in centres.items()}
    # group A: its own blob and the shared one; group B: its own blob and a copy of the shared one
    xy = np.concatenate([blobs["a_only"], blobs["both"], blobs["b_only"], blobs["both"] + 0.01])
    in_a = np.arange(800) < 400
    in_b = ~in_a
    edges = [np.linspace(-12, 12, 49), np.linspace(-3, 13, 33)]
    rgb = overlay_rgb(xy, in_a, in_b, edges)
    assert rgb.shape == (48, 32, 3) and rgb.min() >= 0 and rgb.max() <= 1

    def pixel(point):
        i = np.searchsorted(edges[0], point[0]) - 1
        j = np.searchsorted(edges[1], point[1]) - 1
        return rgb[i, j]

    r, g, b = pixel(centres["a_only"])
    assert r == 0 and g > 0.5 and b == pytest.approx(g)  # cyan
    r, g, b = pixel(centres["b_only"])
    assert b == 0 and g > 0.5 and r == pytest.approx(g)  # yellow
    r, g, b = pixel(centres["both"])
    assert g > 0.9 and g > 2 * r and g > 2 * b  # green
    assert (rgb[0, -1] == 0).all()  # empty map: black


def test_unknown_overlapping_or_single_groups_are_one_line_errors(tmp_path, capsys):
    data = make_data(tmp_path, n=60, genomes=2, sample_of=sample_of)
    bad = {
        "unknown": ({"aquatic": ["aq1", "lake9"], "terrestrial": ["soil1"]}, "'lake9'"),
        "overlap": ({"aquatic": ["aq1", "aq2"], "wet": ["aq2"], "terrestrial": ["soil1"]}, "'aq2'"),
        "single": ({"aquatic": ["aq1"]}, "two or more groups"),
        "empty": ({"aquatic": ["aq1"], "terrestrial": []}, "'terrestrial' names no samples"),
    }
    for case, (groups, needle) in bad.items():
        with pytest.raises(KmervaeError, match=needle):
            map_embeddings(data["emb"], tmp_path / case, groups=groups, **FAST)
        assert not (tmp_path / case).exists()
    base = ["evaluate", "map", "--embeddings", str(data["emb"]), "-o", str(tmp_path / "cli")]
    for extra, needle in (
        (["--group", "aquatic=aq1,lake9", "--group", "terrestrial=soil1"], "lake9"),
        (["--group", "aquatic=aq1,soil2", "--group", "terrestrial=soil1,soil2"], "soil2"),
        (["--group", "aquatic=aq1", "--group", "aquatic=aq2"], "given twice"),
        (["--group", "aquatic"], "NAME=SAMPLE1,SAMPLE2"),
    ):
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert err.startswith("kmervae: error: ") and err.count("\n") == 1 and needle in err, err
        assert not (tmp_path / "cli").exists()
    (tmp_path / "flat").mkdir()
    flat = make_data(tmp_path / "flat", n=40, splits=False)
    with pytest.raises(KmervaeError, match="no sample column"):
        map_embeddings(flat["emb"], tmp_path / "flat_map", groups=GROUPS, **FAST)


def test_group_option_keeps_the_order_given_and_round_trips():
    assert parse_group_options(["b=s2, s3", "a=s1"]) == {"b": ["s2", "s3"], "a": ["s1"]}
    assert list(parse_group_options(["b=s2", "a=s1"])) == ["b", "a"]  # b − a: the first minus the second
    groups = {"terrestrial": ["soil1", "soil2"], "aquatic": ["aq1"]}
    words = group_arguments(groups)
    assert words == ["--group", "terrestrial=soil1,soil2", "--group", "aquatic=aq1"]
    assert parse_group_options(words[1::2]) == groups
