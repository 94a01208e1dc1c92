"""Retrieval quality on held-out sequence, and the parts of the retrieval config.

The end-to-end check cuts the demo's genome slices (resources/demo) in two per record,
trains on fragments of the first 70 % and queries with fragments of the rest (no base
shared), then counts same-genome neighbours with a plain numpy exact search written
here (all pairwise distances, self excluded) — not kmervae's neighbour code. The model is
config/models/retrieval.yaml at a small width (hidden 64, latent 32, batch 64) and 8
epochs, so it runs in seconds; the bounds are loose (bench/quality.py measures the real
thing).
"""

import gzip

import numpy as np
import pytest
import torch
from conftest import DEMO, REPO

from kmervae.chop import chop_genomes
from kmervae.count import count_fasta
from kmervae.errors import KmervaeError
from kmervae.io.store import KmerStore
from kmervae.kmers import Layout
from kmervae.merge import merge_stores
from kmervae.train import beta_at, train
from kmervae.vae import config as cfg
from kmervae.vae.files import load_model
from kmervae.vae.losses import consistency_rows
from kmervae.vae.model import VAE

GENOMES = ("cdiphtheriae_nctc11397", "ecoli_mg1655", "kpneumoniae_hs11286", "saureus_col")
#: bases of each genome slice's first record used (keeps the test fast)
SLICE = 240_000


def _read_first_record(path):
    with gzip.open(path, "rt") as fh:
        header = fh.readline()[1:].split()[0]
        seq = []
        for line in fh:
            if line.startswith(">"):
                break
            seq.append(line.strip())
    return header, "".join(seq)[:SLICE]


def _halves(tmp_path):
    """Per genome: (first 70 % FASTA, last 30 % FASTA) of its first record's slice."""
    parts = {}
    for genome in GENOMES:
        record, seq = _read_first_record(DEMO / f"{genome}.fa.gz")
        cut = int(len(seq) * 0.7)
        first, rest = tmp_path / f"{genome}.train.fa", tmp_path / f"{genome}.held.fa"
        first.write_text(f">{record}\n{seq[:cut]}\n")
        rest.write_text(f">{record}\n{seq[cut:]}\n")
        parts[genome] = (first, rest)
    return parts


def _precision_at_10(z: np.ndarray, labels: np.ndarray, metric: str) -> float:
    """Mean share of same-label rows among each row's 10 nearest other rows (numpy, all pairs)."""
    z = z.astype(np.float64)
    if metric == "cosine":
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
        d = 1.0 - z @ z.T
    else:
        d = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1, kind="stable")[:, :10]
    return float((labels[nearest] == labels[:, None]).mean())


@pytest.fixture(scope="module")
def held_out_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quality")
    parts = _halves(tmp)
    names = {str(p[i]): g for g, p in parts.items() for i in (0, 1)}
    chop = dict(min_length=1000, max_length=3000, distribution="loguniform", genome_names=names)
    fa, _ = chop_genomes([p[0] for p in parts.values()], tmp / "train.fa", tmp / "train.tsv", seed=1, **chop)
    count_fasta(fa, tmp / "train.zarr", Layout())
    merge_stores([tmp / "train.zarr"], tmp / "dataset.zarr", seed=1, fractions=(0.85, 0.15, 0.0))
    held = [p[1] for p in parts.values()]
    held_fa, held_tsv = chop_genomes(held, tmp / "held.fa", tmp / "held.tsv", seed=9, **chop)
    count_fasta(held_fa, tmp / "held.zarr", Layout())
    config = cfg.load(
        REPO / "config/models/retrieval.yaml",
        ["model.hidden=[64]", "model.latent=32", "training.epochs=8", "training.batch_size=64"],
    )
    train(config, tmp / "dataset.zarr", tmp / "model", device="cpu", threads=1)
    held = KmerStore(tmp / "held.zarr")
    genome_of = dict(line.split("\t")[:2] for line in held_tsv.read_text().splitlines()[1:])
    labels = np.array([genome_of[i] for i in held.ids()])
    z = load_model(tmp / "model", "final").embed(held.rows(), held.layout)
    return z, labels, KmerStore(tmp / "dataset.zarr")


def test_the_retrieval_config_finds_same_genome_neighbours_of_held_out_fragments(held_out_run):
    z, labels, dataset = held_out_run
    assert len(dataset.split_index("train")) > 250 and len(labels) > 100
    assert set(labels) == set(GENOMES)
    chance = max(np.mean(labels == g) for g in GENOMES)
    noise = np.random.default_rng(0).normal(size=z.shape)
    random_p10 = _precision_at_10(noise, labels, "euclidean")
    assert random_p10 < chance + 0.15
    for metric in ("euclidean", "cosine"):
        p10 = _precision_at_10(z, labels, metric)
        assert p10 > 0.7, metric
        assert p10 > random_p10 + 0.3, metric


# -- the parts ------------------------------------------------------------------------------


def test_new_keys_at_their_defaults_leave_saved_configs_and_hashes_alone():
    plain = cfg.resolve()
    spelled = cfg.resolve(
        {
            "model": {"input_dropout": 0.0},
            "loss": {
                "consistency": 0.0,
                "consistency_kind": "infonce",
                "consistency_keep": 0.5,
                "consistency_temperature": 0.1,
                "beta_cycle_epochs": 0,
                "warmup_steps": 0,
            },
        }
    )
    assert cfg.config_hash(spelled) == cfg.config_hash(plain) == "5031f3b694da6be4"
    assert "consistency" not in cfg.dump(plain) and "input_dropout" not in cfg.dump(plain)
    retrieval = cfg.load(REPO / "config/models/retrieval.yaml")
    assert cfg.config_hash(retrieval) != cfg.config_hash(plain)


def test_consistency_needs_counts_not_float16_transformed_rows():
    with pytest.raises(KmervaeError, match="loss.consistency.*float16_inputs"):
        cfg.resolve({"loss": {"consistency": 1.0}, "training": {"float16_inputs": True}})
    with pytest.raises(KmervaeError, match="loss.consistency_keep must be"):
        cfg.resolve({"loss": {"consistency_keep": 1.5}})
    model = VAE(cfg.resolve({"input": {"ks": [2, 1]}, "model": {"hidden": [8], "latent": 2}}))
    with pytest.raises(KmervaeError, match="not counts"):
        model.inputs.thin(torch.full((3, 12), 0.25), 0.5)


def test_thinning_keeps_each_occurrence_with_the_given_probability():
    model = VAE(cfg.resolve({"input": {"ks": [2, 1]}, "model": {"hidden": [8], "latent": 2}}))
    counts = torch.from_numpy(np.random.default_rng(1).integers(0, 200, size=(400, 12)).astype(np.float32))
    torch.manual_seed(3)
    view = model.inputs.thin(counts, 0.3)
    assert torch.equal(view, view.round()) and bool((view <= counts).all()) and bool((view >= 0).all())
    # binomial(n, 0.3): the total kept is 0.3 of the total within a few standard deviations
    n = float(counts.sum())
    assert abs(float(view.sum()) - 0.3 * n) < 5 * (n * 0.3 * 0.7) ** 0.5
    torch.manual_seed(3)
    assert torch.equal(model.inputs.thin(counts, 0.3), view)  # seeded by torch's generator


def test_consistency_terms_against_their_definitions():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    ta, tb = torch.tensor(a), torch.tensor(b)
    mse = consistency_rows(ta, tb, "mse", 0.1).numpy()
    np.testing.assert_allclose(mse, ((a - b) ** 2).sum(1), rtol=1e-5)
    na, nb = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    cosine = consistency_rows(ta, tb, "cosine", 0.1).numpy()
    np.testing.assert_allclose(cosine, 1 - (na * nb).sum(1), rtol=1e-5)
    logits = na @ nb.T / 0.5

    def xent(m):
        m = m - m.max(1, keepdims=True)
        return -(np.diag(m) - np.log(np.exp(m).sum(1)))

    expected = 0.5 * (xent(logits) + xent(logits.T))
    np.testing.assert_allclose(consistency_rows(ta, tb, "infonce", 0.5).numpy(), expected, rtol=1e-5)


def test_the_consistency_views_leave_batchnorm_running_statistics_alone():
    config = cfg.resolve(
        {"input": {"ks": [2, 1]}, "model": {"hidden": [8], "latent": 2}, "loss": {"consistency": 1.0}}
    )
    model = VAE(config).train()
    counts = torch.from_numpy(np.random.default_rng(4).integers(0, 50, size=(16, 12)).astype(np.float32))
    x = model.transform(counts)
    plain = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(0)
    without = model.loss(x, 0.05, noise=torch.zeros(16, 2))
    after_plain = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(plain)
    with_views = model.loss(x, 0.05, noise=torch.zeros(16, 2), block=counts)
    for k, v in model.state_dict().items():
        assert torch.equal(v, after_plain[k]), k  # the same running statistics as without the views
    assert float(with_views.loss.detach()) > float(without.loss.detach())
    assert torch.equal(with_views.reconstruction, without.reconstruction)


def test_input_dropout_only_in_training():
    model_keys = {"hidden": [8], "latent": 2, "input_dropout": 0.5}
    config = cfg.resolve({"input": {"ks": [2, 1]}, "model": model_keys})
    model = VAE(config)
    x = torch.randn(6, 12)
    model.eval()
    z1, _ = model.encode(x)
    out, mean, _ = model(x)
    assert torch.equal(mean, z1)
    model.train()
    torch.manual_seed(0)
    _, m_a, _ = model(x)
    torch.manual_seed(1)
    _, m_b, _ = model(x)
    assert not torch.allclose(m_a, m_b)


def test_cyclical_beta_restarts_after_the_warm_up():
    config = cfg.resolve({"loss": {"beta": 0.2, "warmup_epochs": 2, "beta_cycle_epochs": 4}})
    got = [round(beta_at(config, e), 6) for e in range(10)]
    assert got == [0.0, 0.1, 0.0, 0.1, 0.2, 0.2, 0.0, 0.1, 0.2, 0.2]
    assert beta_at(cfg.resolve({"loss": {"beta": 0.2, "warmup_epochs": 2}}), 7) == 0.2


def test_beta_warm_up_in_steps_rises_per_step_whatever_the_epoch_size():
    config = cfg.resolve({"loss": {"beta": 0.2, "warmup_epochs": 0, "warmup_steps": 10}})
    for steps in (3, 7, 25):
        got = [beta_at(config, e, b, steps) for e in range(4) for b in range(steps)]
        assert got == pytest.approx([0.2 * min(1.0, s / 10) for s in range(4 * steps)])


def test_beta_warm_up_in_steps_and_in_epochs_together_is_refused():
    with pytest.raises(KmervaeError, match="loss.warmup_steps 10 and loss.warmup_epochs 5 are both set"):
        cfg.resolve({"loss": {"warmup_steps": 10}})


def test_training_records_the_step_warm_up_epochs_and_their_beta(tmp_path):
    from test_train import make_dataset, tiny_config

    _, split = make_dataset(tmp_path / "d.zarr")
    steps = -(-int((split == 0).sum()) // 32)  # batch 32 of tiny_config
    warm = steps + 3  # ends inside the second epoch
    config = tiny_config("loss.warmup_epochs=0", f"loss.warmup_steps={warm}", "training.epochs=4")
    out = train(config, tmp_path / "d.zarr", tmp_path / "m", device="cpu", threads=1)
    lines = (out / "history.tsv").read_text().splitlines()
    rows = [dict(zip(lines[0].split("\t"), line.split("\t"))) for line in lines[1:]]
    beta = config["loss"]["beta"]
    expected = [beta * min(1.0, (e * steps + steps - 1) / warm) for e in range(4)]
    assert [float(r["beta"]) for r in rows] == pytest.approx(expected)
    assert [r["warmup"] for r in rows] == ["1", "1", "0", "0"]
    assert all(r["best"] == "0" for r in rows[:2])


def test_training_with_the_consistency_term_is_seeded_and_changes_the_weights(tmp_path):
    from safetensors.torch import load_file
    from test_train import make_dataset, tiny_config

    make_dataset(tmp_path / "d.zarr")
    runs = {}
    for name, weight in (("a", 1.0), ("b", 1.0), ("off", 0.0)):
        config = tiny_config("training.epochs=2", f"loss.consistency={weight}")
        train(config, tmp_path / "d.zarr", tmp_path / name, device="cpu", threads=1)
        runs[name] = load_file(str(tmp_path / name / "final.safetensors"))
    assert all(torch.equal(runs["a"][k], runs["b"][k]) for k in runs["a"])
    assert not all(torch.equal(runs["a"][k], runs["off"][k]) for k in runs["a"])
