"""Quality reports over embeddings and k-mer stores, each a function of paths → dict of numbers.

``spearman`` (local distance vs k-mer distance), ``count_distance`` (nearest-neighbour
distance distributions), ``baselines`` (the spearman protocol on PCA of the CLR input),
``retrieval`` (precision@k of same-label neighbours) and ``map`` (t-SNE + HDBSCAN).
Shared pieces (pool selection, exact neighbours, CLR of store rows) live in
:mod:`kmervae.evaluate.neighbours`.
"""
