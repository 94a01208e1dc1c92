"""Files in and out: FASTA input, k-mer and embeddings stores, atomic outputs, the legacy .npy layout."""
