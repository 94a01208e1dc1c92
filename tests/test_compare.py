"""The cross-comparison over runs: matrix cells, sweep lines, best-epoch MSE, grand table, figures.

The oracle is the set of numbers the test itself wrote into fake report and model
directories: every value kmervae.compare reports must be found back exactly where it
was put, and selections (own-dataset sweep, best epoch) are recomputed by brute force.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kmervae.cli import main
from kmervae.compare import (
    best_epoch_mse,
    collect_baselines,
    compare_runs,
    concat_tables,
    cross_matrix,
    grand_comparison,
    length_sweep,
    matrix_table,
    parse_run,
)
from kmervae.errors import KmervaeError

RUNS = ["ALL.min1000.default", "ALL.min2000.default", "aq.min1000.kmer5"]
TESTSETS = ["ALL.min1000", "ALL.min2000", "aq.min1000"]


def _fake_sweep(root, rng):
    """Write spearman.json, history.tsv and baselines.tsv files with random numbers; return them."""
    truth = {}
    for run in RUNS:
        for testset in TESTSETS:
            rho = float(rng.uniform(0.2, 0.95))
            lo, hi = rho - float(rng.uniform(0.001, 0.05)), rho + float(rng.uniform(0.001, 0.05))
            truth[run, testset] = (rho, lo, hi)
            out = root / "reports" / run / testset / "spearman"
            out.mkdir(parents=True)
            (out / "spearman.json").write_text(json.dumps(
                {"pool": 500, "queries": 50, "k": 10, "metric": "cosine", "spearman": rho,
                 "spearman_ci95": [lo, hi], "pearson": rho - 0.01, "pearson_ci95": [lo, hi], "seed": 42}
            ))
    histories = {}
    for run in RUNS:
        epochs = 6
        history = pd.DataFrame({
            "epoch": np.arange(1, epochs + 1),
            "train_loss": rng.uniform(1, 2, epochs),
            "val_loss": rng.uniform(1, 2, epochs),
            "lr": 1e-4 * 0.5 ** np.arange(epochs),
            "mse_6mer": rng.uniform(0, 1, epochs),
            "val_mse_6mer": rng.uniform(0, 1, epochs),
            "mse_5mer": rng.uniform(0, 1, epochs),
            "mse_1mer": rng.uniform(0, 1, epochs),
        })
        (root / "models" / run).mkdir(parents=True)
        history.to_csv(root / "models" / run / "history.tsv", sep="\t", index=False)
        histories[run] = history
    baselines = {}
    # two runs computed baselines on the first test set (one shared row, one of its own each),
    # one run on the second; the third test set has none
    for run, testset, widths in [(RUNS[0], TESTSETS[0], [32, 384]), (RUNS[2], TESTSETS[0], [32, 128]),
                                 (RUNS[1], TESTSETS[1], [32, 384])]:
        table = pd.DataFrame({
            "method": ["pca"] * len(widths) + ["clr", "vae"], "width": widths + [2772, 384],
            "spearman": rng.uniform(0.1, 0.9, len(widths) + 2), "spearman_ci_lo": [0.1, 0.2, 0.3, 0.4],
            "spearman_ci_hi": [0.5, 0.6, 0.7, 0.8],
        })
        out = root / "reports" / run / testset / "baselines"
        out.mkdir(parents=True)
        table.to_csv(out / "baselines.tsv", sep="\t", index=False)
        known = baselines.setdefault(testset, {})
        for row in table[table.method != "vae"].itertuples():  # the run's own row is its matrix cell
            known.setdefault((row.method, row.width), row.spearman)
    return truth, histories, baselines


@pytest.fixture
def sweep(tmp_path):
    return (tmp_path, *_fake_sweep(tmp_path, np.random.default_rng(7)))


def test_matrix_cells_are_the_reported_numbers(sweep):
    root, truth, _, _ = sweep
    long = cross_matrix(RUNS, TESTSETS, root / "reports")
    assert len(long) == len(RUNS) * len(TESTSETS)
    for row in long.itertuples():
        assert (row.spearman, row.spearman_ci_lo, row.spearman_ci_hi) == truth[row.run, row.testset]
        run = parse_run(row.run)
        assert (row.dataset, row.threshold, row.model) == (run.dataset, run.threshold, run.model)
        assert row.test_threshold == int(row.testset.rsplit(".min", 1)[1])
    wide = matrix_table(long)
    assert list(wide.index) == RUNS and list(wide.columns) == TESTSETS
    rho, lo, hi = truth["aq.min1000.kmer5", "ALL.min2000"]
    assert wide.loc["aq.min1000.kmer5", "ALL.min2000"] == f"{rho:.4f} [{lo:.4f}, {hi:.4f}]"


def test_length_sweep_own_keeps_only_the_runs_dataset(sweep):
    root, truth, _, _ = sweep
    long = cross_matrix(RUNS, TESTSETS, root / "reports")
    lines = length_sweep(long, "own")
    for run in RUNS:
        dataset = parse_run(run).dataset
        expected = sorted(
            (int(t.rsplit(".min", 1)[1]), truth[run, t][0]) for t in TESTSETS if t.rsplit(".min", 1)[0] == dataset
        )
        got = list(zip(lines[run].test_threshold, lines[run].spearman))
        assert got == expected
    every = length_sweep(long, "all")
    assert sum(len(v) for v in every.values()) == len(RUNS) * len(TESTSETS)
    with pytest.raises(KmervaeError):
        length_sweep(long, "some")


def test_best_epoch_mse_prefers_validation_columns(sweep):
    _, _, histories, _ = sweep
    for history in histories.values():
        best = int(np.argmin(history.val_loss.to_numpy()))
        got = best_epoch_mse(history)
        assert list(got) == [6, 5, 1]
        assert got[6] == history.val_mse_6mer[best]
        assert got[5] == history.mse_5mer[best] and got[1] == history.mse_1mer[best]
    # with the trainer's `best` flags, the last flagged epoch wins even if an earlier loss was lower
    history = next(iter(histories.values())).copy()
    history["best"] = [1, 0, 0, 1, 0, 0]
    assert best_epoch_mse(history)[6] == history.val_mse_6mer[3]


def test_grand_comparison_ranks_runs_and_baselines_per_testset(sweep):
    root, truth, _, baselines = sweep
    long = cross_matrix(RUNS, TESTSETS, root / "reports")
    tables = collect_baselines(RUNS, TESTSETS, root / "reports")
    assert sorted(tables) == sorted(baselines)
    grand = grand_comparison(long, tables)
    for testset in TESTSETS:
        part = grand[grand.testset == testset]
        expected = [truth[run, testset][0] for run in RUNS]
        expected += list(baselines.get(testset, {}).values())
        assert sorted(part.spearman, reverse=True) == list(part.spearman)
        assert sorted(part.spearman) == sorted(expected)
    assert set(grand[grand.testset == TESTSETS[0]].method) >= {"pca (32)", "pca (128)", "pca (384)", "clr (2772)"}
    pca = grand[(grand.testset == TESTSETS[0]) & (grand.method == "pca (384)")]
    assert pca.spearman_ci_lo.item() == 0.2 and pca.spearman_ci_hi.item() == 0.6


def test_cli_writes_every_table_and_figure(sweep):
    root, truth, _, _ = sweep
    matrix = root / "out" / "cross_comparison.tsv"
    figures = root / "figures"
    status = main(["compare", "--runs", *RUNS, "--testsets", *TESTSETS, "--reports", str(root / "reports"),
                   "--models", str(root / "models"), "--matrix", str(matrix), "--figures", str(figures)])
    assert status == 0
    table = pd.read_csv(matrix, sep="\t")
    assert np.allclose(
        table.spearman, [truth[r, t][0] for r, t in zip(table.run, table.testset)], rtol=1e-5, atol=0
    )
    for name in ("length_sweep", "loss_curves", "lr_curves", "mse_by_kmer", "grand_comparison"):
        for suffix in (".png", ".pdf"):
            assert (figures / f"{name}{suffix}").stat().st_size > 1000
    assert (root / "out" / "cross_comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    grand = pd.read_csv(figures / "grand_comparison.tsv", sep="\t")
    assert set(grand.kind) == {"vae", "baseline"}


def test_same_inputs_give_same_bytes(sweep, tmp_path_factory):
    root, _, _, _ = sweep
    outputs = []
    for _ in range(2):
        out = tmp_path_factory.mktemp("run")
        compare_runs(RUNS, TESTSETS, root / "reports", root / "models", out / "m.tsv", out / "fig")
        outputs.append([(out / "m.tsv").read_bytes(), (out / "fig" / "grand_comparison.pdf").read_bytes()])
    assert outputs[0] == outputs[1]


def test_missing_or_bad_report_names_the_file(sweep):
    root, _, _, _ = sweep
    victim = root / "reports" / RUNS[1] / TESTSETS[2] / "spearman" / "spearman.json"
    victim.write_text(json.dumps({"spearman": 0.5, "spearman_ci95": 0.4}))
    with pytest.raises(KmervaeError, match=r"spearman\.json.*spearman_ci95"):
        cross_matrix(RUNS, TESTSETS, root / "reports")
    victim.unlink()
    with pytest.raises(KmervaeError, match=str(victim)):
        cross_matrix(RUNS, TESTSETS, root / "reports")
    with pytest.raises(KmervaeError, match="not DATASET.minTHRESHOLD.MODEL"):
        parse_run("ALL.default")


def test_concat_tables_keeps_one_header(tmp_path):
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    a.write_text("contig_id\tgenome\nc1\tg1\nc2\tg1\n")
    b.write_text("contig_id\tgenome\nc3\tg2\n")
    out = concat_tables([a, b], tmp_path / "all.tsv")
    assert out.read_text() == "contig_id\tgenome\nc1\tg1\nc2\tg1\nc3\tg2\n"
    b.write_text("id\tgenome\nc3\tg2\n")
    with pytest.raises(KmervaeError, match="b.tsv: line 1"):
        concat_tables([a, b], tmp_path / "bad.tsv")
    assert not (tmp_path / "bad.tsv").exists()


def test_bad_model_config_names_the_file_and_writes_nothing(sweep):
    root, _, _, _ = sweep
    bad = root / "models" / RUNS[1] / "config.yaml"
    bad.write_text("model: {latent: -3}\n")
    out = root / "out"
    with pytest.raises(KmervaeError, match=rf"{bad}.*model.latent"):
        compare_runs(RUNS, TESTSETS, root / "reports", root / "models", out / "m.tsv", out / "fig")
    assert not out.exists()
