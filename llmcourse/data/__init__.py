"""Layer 3, data: reading files, row layouts, checks, prompt templates, tokenization and packing."""
