"""Figures fit to print: column widths at 300 dpi, labelled axes, n in titles, legends off the data.

The figures are drawn by the real report functions on tiny synthetic inputs. Oracles are
independent of kmervae.plots: the print widths come from millimetres (89 and 183 mm), the
PNG's size is read back with PIL, and colour distances are CIE76 ΔE from an sRGB → CIELAB
conversion written here.
"""

from __future__ import annotations

import itertools
import json

import matplotlib.colors
import matplotlib.text
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from PIL import Image
from synthetic_eval import make_data

from kmervae import plots
from kmervae.compare import (
    compare_runs,
    cross_matrix,
    grand_comparison,
    grand_figure,
    heatmap_figure,
    length_sweep,
    length_sweep_figure,
    loss_curves_figure,
    lr_curves_figure,
    mse_figure,
    mse_spaces,
    plot_heatmap,
    read_run_config,
)
from kmervae.vae.config import dump, load
from kmervae.evaluate.count_distance import (
    count_distance,
    count_vs_distance_figure,
    nn_distance_figure,
    pairwise_figure,
)
from kmervae.evaluate.map import _scatter_figure, map_embeddings
from kmervae.evaluate.map_groups import composition_figure, density_figure, overlay_figure
from kmervae.evaluate.retrieval import retrieval, retrieval_figure

SINGLE_PX, DOUBLE_PX = round(89 / 25.4 * 300), round(183 / 25.4 * 300)  # 1051, 2161
OKABE_ITO = {"#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"}


def lab(hex_colour: str) -> np.ndarray:
    """sRGB (D65) → CIELAB."""
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]) / 255
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    t = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def delta_e(a: str, b: str) -> float:
    return float(np.linalg.norm(lab(a) - lab(b)))


def png_width(path) -> int:
    with Image.open(path) as image:
        assert image.info["dpi"] == pytest.approx((300, 300), abs=0.5)
        return image.size[0]


def check_readable(fig, title_n: bool = True) -> None:
    """Every axes with data has both labels, text is >= 6 pt, legends sit off every axes, n is said."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    shown = [ax for ax in fig.axes if ax.axison and ax.get_label() != "<colorbar>"]
    assert shown
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
    assert min(t.get_fontsize() for t in texts) >= 6
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in shown:
            assert not box.overlaps(ax.get_window_extent(renderer)), f"legend over axes {ax.get_title()!r}"
    if title_n:
        titles = [ax.get_title() for ax in shown] + [fig.get_suptitle()]
        assert any("n = " in t for t in titles), titles


def labelled(ax) -> bool:
    return bool(ax.get_xlabel().strip()) and bool(ax.get_ylabel().strip())


# -- the palette ---------------------------------------------------------------------------


def test_categorical_palette_is_okabe_ito_then_far_apart_colours():
    assert {c.upper() for c in plots.categorical_palette(8)} == OKABE_ITO
    for n in (8, plots.MAX_CATEGORIES):
        colours = plots.categorical_palette(n)
        assert len(set(colours)) == n
        closest = min(delta_e(a, b) for a, b in itertools.combinations(colours, 2))
        assert closest > 20, f"{n} colours: two are only ΔE {closest:.1f} apart"
        # and none is mistaken for the greys of "others"/noise, or lost on white paper
        for grey in (plots.OTHER_COLOUR, plots.NOISE_COLOUR, "#FFFFFF"):
            assert min(delta_e(c, grey) for c in colours) > 20


def test_categories_colour_the_frequent_labels_and_group_the_rest():
    n_labels = plots.MAX_CATEGORIES + 5
    counts = {f"g{i}": 100 - 3 * i for i in range(n_labels)}  # g0 most frequent
    values = np.repeat(list(counts), list(counts.values()))
    values = np.r_[values, ["noise"] * 7]
    legend, colours, slot = plots.categories(values, keep_last=("noise",))
    kept = plots.MAX_CATEGORIES - 1
    assert legend[:kept] == [f"g{i}" for i in range(kept)]
    assert legend[kept:] == ["6 others", "noise"]
    assert colours[kept:] == [plots.OTHER_COLOUR, plots.NOISE_COLOUR]
    assert len(set(colours[:kept])) == kept
    assigned = np.array(legend)[slot]
    for value, got in zip(values, assigned):
        expected = value if value == "noise" or int(value[1:]) < kept else "6 others"
        assert got == expected
    # few labels: Okabe-Ito only, by name when asked (numbers by value)
    legend, colours, _ = plots.categories(np.array(["10", "2", "2", "1"]), by_name=True)
    assert legend == ["1", "2", "10"] and {c.upper() for c in colours} <= OKABE_ITO


# -- compare figures -----------------------------------------------------------------------


RUNS = ["ALL.min1000.default", "ALL.min1000.vae65_hybrid", "aq.min1000.default"]
TESTSETS = ["ALL.min1000", "ALL.min2000"]


@pytest.fixture
def sweep(tmp_path):
    """Spearman reports, histories and model configs of three runs (the last without config.yaml)."""
    rng = np.random.default_rng(3)
    for run in RUNS:
        for testset in TESTSETS:
            out = tmp_path / "reports" / run / testset / "spearman"
            out.mkdir(parents=True)
            rho = float(rng.uniform(0.3, 0.9))
            record = {"spearman": rho, "spearman_ci95": [rho - 0.02, rho + 0.01], "queries": 40, "k": 7}
            (out / "spearman.json").write_text(json.dumps(record))
        model = tmp_path / "models" / run
        model.mkdir(parents=True)
        config = load(REPO / "config" / "models" / f"{run.split('.')[-1]}.yaml")
        if run != RUNS[-1]:
            (model / "config.yaml").write_text(dump(config))
        history = {"epoch": np.arange(1, 7), "lr": np.full(6, 1e-3)}
        history.update(train_loss=np.geomspace(900, 90, 6), val_loss=np.geomspace(1e3, 1e2, 6))
        history.update({f"mse_{k}mer": rng.uniform(0.1, 1, 6) for k in config["input"]["ks"]})
        pd.DataFrame(history).to_csv(model / "history.tsv", sep="\t", index=False)
    return tmp_path


def test_compare_pngs_are_column_wide_at_300_dpi(sweep):
    out = compare_runs(
        RUNS, TESTSETS, sweep / "reports", sweep / "models", sweep / "m" / "cc.tsv", sweep / "fig"
    )
    widths = {name: png_width(out[name]) for name in ("heatmap", "length_sweep", "loss_curves",
                                                        "lr_curves", "mse_by_kmer", "grand_comparison")}
    assert widths == {"heatmap": SINGLE_PX, "length_sweep": DOUBLE_PX, "loss_curves": DOUBLE_PX,
                      "lr_curves": SINGLE_PX, "mse_by_kmer": DOUBLE_PX, "grand_comparison": DOUBLE_PX}
    # no figure is taller than a page (247 mm of a journal page's text height)
    for name in widths:
        with Image.open(out[name]) as image:
            assert image.size[1] <= round(247 / 25.4 * 300)
    long = cross_matrix(RUNS, TESTSETS, sweep / "reports")
    plot_heatmap(pd.concat([long, long.assign(testset=long.testset + ".copy")]), sweep / "wide")
    assert png_width(sweep / "wide.png") == DOUBLE_PX  # four test sets need two columns


def test_compare_figures_label_axes_and_keep_legends_off_the_data(sweep):
    long = cross_matrix(RUNS, TESTSETS, sweep / "reports")
    histories = {run: pd.read_csv(sweep / "models" / run / "history.tsv", sep="\t") for run in RUNS}
    configs = {run: read_run_config(sweep / "models" / run) for run in RUNS}
    heatmap = heatmap_figure(long)
    assert "n = 40 queries × 7 neighbours" in heatmap.get_suptitle()
    check_readable(heatmap)
    # a 1 x 1 matrix: the title is the figure's, above the colour bar; their boxes do not meet
    single = heatmap_figure(long[(long.run == RUNS[0]) & (long.testset == TESTSETS[0])])
    check_readable(single)
    single.canvas.draw()
    colourbar = next(ax for ax in single.axes if ax.get_label() == "<colorbar>")
    assert not single._suptitle.get_window_extent().overlaps(colourbar.get_window_extent())
    sweep_fig = length_sweep_figure(length_sweep(long), "n = 40 queries × 7 neighbours")
    check_readable(sweep_fig)
    assert "higher is better" in sweep_fig.axes[0].get_ylabel()
    for fig in (heatmap, sweep_fig):
        assert all(labelled(ax) for ax in fig.axes if ax.get_label() != "<colorbar>")
    losses = loss_curves_figure(histories, configs)
    check_readable(losses, title_n=False)
    panels = [ax for ax in losses.axes if ax.axison]
    assert len(panels) == len(RUNS) and all(ax.get_yscale() == "log" for ax in panels)
    assert all(ax.get_ylabel() for ax in panels if ax.get_subplotspec().is_first_col())
    assert all(ax.get_xlabel() == "epoch" for ax in panels if ax.get_subplotspec().is_last_row())
    grand = grand_comparison(long)
    fig = grand_figure(grand)
    check_readable(fig, title_n=False)
    assert labelled(fig.axes[0])
    # one row per run, best mean Spearman over the test sets first
    mean = {run: np.mean([r.spearman for r in long.itertuples() if r.run == run]) for run in RUNS}
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == sorted(RUNS, key=lambda r: -mean[r])


def test_mse_panels_name_the_space_each_model_reconstructs(sweep):
    configs = {run: read_run_config(sweep / "models" / run) for run in RUNS}
    assert configs[RUNS[-1]] is None
    hybrid = yaml.safe_load((REPO / "config" / "models" / "vae65_hybrid.yaml").read_text())
    spaces = mse_spaces(configs[RUNS[1]])
    for k in (6, 5, 4, 3):
        kind = hybrid["loss"]["groups"][f"{k}mer"]["kind"]
        assert ("frequencies" in spaces[k]) == (kind == "bce")
        assert ("log(frequency + 0.01)" in spaces[k]) == (kind == "log_mse")
        assert "CLR" not in spaces[k]
    assert set(mse_spaces(configs[RUNS[0]]).values()) == {"the CLR input"}
    mse = {run: {k: 0.5 for k in (6, 5, 4, 3)} for run in RUNS}
    fig = mse_figure(mse, {run: mse_spaces(c) for run, c in configs.items()})
    ylabels = sorted(ax.get_ylabel() for ax in fig.axes)
    expected = ["MSE of the CLR input", "MSE of frequencies\n(BCE loss)"]
    expected += ["MSE of log(frequency + 0.01)\n(log-MSE loss)", "reconstruction MSE\n(space unknown: no config.yaml)"]
    assert ylabels == sorted(expected)
    check_readable(fig, title_n=False)
    assert all(labelled(ax) for ax in fig.axes)


def test_lr_figure_says_when_every_rate_is_constant():
    epochs = np.arange(1, 5)
    constant = {f"r{i}": pd.DataFrame({"epoch": epochs, "lr": np.full(4, 1e-3)}) for i in range(3)}
    fig = lr_curves_figure(constant)
    notes = [t.get_text() for t in fig.axes[0].texts]
    assert any("constant learning rate" in t and "0.001" in t for t in notes), notes
    assert len(fig.axes[0].lines) == 1  # three identical runs, one line, and the note says so
    check_readable(fig, title_n=False)
    decaying = {**constant, "r9": pd.DataFrame({"epoch": epochs, "lr": 1e-3 * 0.5 ** np.arange(4)})}
    fig = lr_curves_figure(decaying)
    assert not fig.axes[0].texts and len(fig.axes[0].lines) == 2
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["r0\nr1\nr2", "r9"]
    check_readable(fig, title_n=False)
    assert labelled(fig.axes[0])


# -- evaluation report figures -------------------------------------------------------------


def test_map_figures_say_n_and_give_each_label_its_own_colour(tmp_path):
    data = make_data(tmp_path, n=80, genomes=3)
    kw = dict(split="all", sample=0, n_iter=20, early_exaggeration_iter=10, min_cluster_size=5, min_samples=3)
    map_embeddings(data["emb"], tmp_path / "m", store=data["store"], labels=data["labels"], **kw)
    for name in ("map_gc", "map_cluster", "map_label"):
        assert png_width(tmp_path / "m" / f"{name}.png") == SINGLE_PX
    rng = np.random.default_rng(0)
    labels = np.array([f"species_{i}" for i in rng.integers(0, 6, 300)])
    fig = _scatter_figure(rng.normal(size=(300, 2)), labels, "t-SNE by species", categorical=True,
                          colour_label="species")
    check_readable(fig)
    ax = fig.axes[0]
    assert "n = 300" in ax.get_title() and labelled(ax)
    points = ax.collections[0]
    colours = {tuple(np.round(c, 4)) for c in points.get_facecolors()}
    assert len(colours) == 6  # as many colours as labels, each label one colour
    by_label = {}
    offsets = points.get_offsets()
    for xy, colour in zip(offsets, points.get_facecolors()):
        by_label.setdefault(tuple(np.round(colour, 4)), []).append(tuple(xy))
    assert sorted(len(v) for v in by_label.values()) == sorted(np.unique(labels, return_counts=True)[1])


def test_retrieval_figure_has_a_linear_k_axis_with_the_ks_as_ticks(tmp_path):
    data = make_data(tmp_path, n=60, genomes=3)
    r = retrieval(data["emb"], data["labels"], tmp_path / "r", ks=(1, 10), split="all", queries=30)
    assert png_width(tmp_path / "r" / "retrieval.png") == SINGLE_PX
    fig = retrieval_figure(r["rows"], [1, 10], {"queries": 30, "pool": 60, "label_column": "genome"})
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear" and list(ax.get_xticks()) == [1, 10]
    assert "n = 30 queries" in ax.get_title()
    check_readable(fig)
    assert labelled(ax)


def test_group_map_figures_are_readable_and_the_difference_is_centred_at_zero(tmp_path):
    rng = np.random.default_rng(4)
    difference = rng.normal(size=(12, 12)) * 0.01 + 0.003  # not symmetric itself
    edges = (np.linspace(-5, 5, 13), np.linspace(-3, 7, 13))
    fig = density_figure(difference, edges, ("aquatic", "terrestrial"), (120, 80))
    check_readable(fig)
    ax = fig.axes[0]
    assert labelled(ax) and "n = 120 aquatic, 80 terrestrial" in ax.get_title()
    (image,) = ax.get_images()
    low, high = image.get_clim()
    assert low == pytest.approx(-np.abs(difference).max()) and high == pytest.approx(-low)
    np.testing.assert_allclose(image.get_array(), difference.T)  # x along the horizontal axis
    middle = np.asarray(image.cmap(0.5)[:3])
    ends = np.asarray(image.cmap(0.0)[:3]), np.asarray(image.cmap(1.0)[:3])
    assert middle.min() > 0.9 and all(end.min() < 0.5 for end in ends)  # diverging: light at 0, dark ends
    colourbar = next(a for a in fig.axes if a.get_label() == "<colorbar>")
    assert "aquatic" in colourbar.get_ylabel() and "terrestrial" in colourbar.get_ylabel()
    plots.save_figure(fig, tmp_path / "density")
    assert png_width(tmp_path / "density.png") == SINGLE_PX

    fig = overlay_figure(rng.random((20, 20, 3)), (-5, 5, -3, 7), ("aquatic", "terrestrial"), (120, 80))
    check_readable(fig)
    assert labelled(fig.axes[0]) and "n = 200" in fig.axes[0].get_title()
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["aquatic (120)", "terrestrial (80)", "both"]

    rows = [[0, 10, 7, 3, 0.7, 0.3], [1, 5, 1, 4, 0.2, 0.8], ["noise", 2, 1, 1, 0.5, 0.5]]
    fig = composition_figure(rows, ["aquatic", "terrestrial"], np.array([9 / 17, 8 / 17]))
    check_readable(fig)
    ax = fig.axes[0]
    assert labelled(ax) and "n = 17 contigs" in ax.get_title()
    heights = np.array([p.get_height() for p in ax.patches]).reshape(2, 3)
    np.testing.assert_allclose(heights, [[0.7, 0.2, 0.5], [0.3, 0.8, 0.5]])
    colours = {matplotlib.colors.to_hex(p.get_facecolor()).upper() for p in ax.patches}
    assert len(colours) == 2 and colours <= OKABE_ITO
    plots.save_figure(fig, tmp_path / "composition")
    assert png_width(tmp_path / "composition.png") == SINGLE_PX


def test_count_distance_figures_are_column_wide_labelled_and_say_n(tmp_path):
    data = make_data(tmp_path, n=120, genomes=3)
    ranges = [(0, 0.1), (0, 0.3)]
    r = count_distance(data["emb"], tmp_path / "cd", split="all", pairs=500, ranges=ranges)
    widths = {name: png_width(tmp_path / "cd" / f"{name}.png")
              for name in ("nn_distance_hist", "count_vs_distance", "pairwise_distances")}  # fmt: skip
    assert widths == {"nn_distance_hist": SINGLE_PX, "count_vs_distance": SINGLE_PX, "pairwise_distances": DOUBLE_PX}
    rng = np.random.default_rng(2)
    nn = rng.uniform(0.01, 0.4, 120)
    hist = nn_distance_figure(nn, "cosine")
    curve = count_vs_distance_figure(nn, r["fits"], "cosine")
    pairs = pairwise_figure(rng.gamma(4, size=500), rng.uniform(0, 2, 500))
    for fig in (hist, curve):
        check_readable(fig)
        assert "n = 120 contigs" in fig.axes[0].get_title() and labelled(fig.axes[0])
    check_readable(pairs)
    assert pairs.get_suptitle() == "n = 500 random pairs" and all(labelled(ax) for ax in pairs.axes)
    colours = {matplotlib.colors.to_hex(p.get_facecolor()).upper() for ax in pairs.axes for p in ax.patches}
    assert len(colours) == 2 and colours <= OKABE_ITO
    # the fit legend lists the data and every fit, off the axes (check_readable), in the house sizes
    legend = curve.axes[0].get_legend()
    assert len(legend.get_texts()) == 1 + len(ranges)
    for fig in (hist, curve, pairs):
        assert all(ax.title.get_fontsize() == plots.TITLE_PT for ax in fig.axes)
    assert all(t.get_fontsize() == plots.SMALL_PT + 0.5 for t in legend.get_texts())
