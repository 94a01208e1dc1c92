"""kmervae: multi-scale canonical k-mer profiles of contigs, a VAE over them, and its embeddings."""

__version__ = "0.1.0"
