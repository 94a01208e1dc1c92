"""The k-mer contract: canonical groups, column order, frequencies and CLR."""

import itertools

import numpy as np
import pytest
import torch

from kmervae.errors import KmervaeError
from kmervae.kmers import Layout, canonical_kmers, clr, counts_to_clr, frequencies, gc_fraction, group_width

COMPLEMENT = str.maketrans("ACGT", "TGCA")


def brute_canonical(k):
    kmers = ("".join(p) for p in itertools.product("ACGT", repeat=k))
    return sorted({min(s, s.translate(COMPLEMENT)[::-1]) for s in kmers})


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6, 7])
def test_canonical_kmers_match_brute_force(k):
    assert list(canonical_kmers(k)) == brute_canonical(k)


def test_group_widths_and_default_layout():
    assert [group_width(k) for k in (7, 6, 5, 4, 3, 2, 1)] == [8192, 2080, 512, 136, 32, 10, 2]
    layout = Layout()
    assert layout.width == 2772
    assert [(g.k, g.start, g.stop) for g in layout.groups][:2] == [(6, 0, 2080), (5, 2080, 2592)]
    assert layout.column_names()[-2:] == ["A", "C"]
    assert Layout.parse("5..1").width == 692
    assert Layout.parse("7..1").width == 2772 + 8192


def test_layout_parse_rejects_garbage():
    with pytest.raises(KmervaeError):
        Layout.parse("six")
    with pytest.raises(KmervaeError):
        Layout.parse("9..1")


def test_columns_for_missing_group_is_a_clear_error():
    with pytest.raises(KmervaeError, match="7-mers"):
        Layout.parse("6..1").columns_for((7, 4))


def test_frequencies_and_clr_numpy_equals_torch_and_recomputation():
    rng = np.random.default_rng(0)
    layout = Layout.parse("3..1")
    counts = rng.integers(0, 20, size=(5, layout.width)).astype(np.uint32)
    counts[0] = 0  # an empty record stays zero
    f = frequencies(counts, layout)
    for g in layout.groups:
        sums = f[1:, g.start : g.stop].sum(axis=1)
        np.testing.assert_allclose(sums, 1.0, rtol=1e-6)
    assert not f[0].any()
    x = clr(f, layout)
    # independent recomputation of one group's CLR
    g = layout.group(3)
    logs = np.log(f[:, g.start : g.stop].astype(np.float64) + 0.5 / 32)
    np.testing.assert_allclose(x[:, g.start : g.stop], logs - logs.mean(axis=1, keepdims=True), rtol=1e-5, atol=1e-5)
    xt = counts_to_clr(torch.from_numpy(counts.astype(np.int64)), layout)
    np.testing.assert_allclose(xt.numpy(), x, rtol=1e-5, atol=1e-5)


def test_gc_fraction_from_one_mers():
    layout = Layout.parse("2..1")
    counts = np.zeros((2, layout.width), dtype=np.uint32)
    g1 = layout.group(1)
    counts[0, g1.start : g1.stop] = [30, 70]  # A/T, C/G
    np.testing.assert_allclose(gc_fraction(counts, layout), [0.7, 0.0])
