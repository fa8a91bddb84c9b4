"""Language models: training (next-token prediction over lines or a stream), generation, and their
figures (loss, perplexity, bits per character)."""
