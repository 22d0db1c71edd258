"""Layer 9, cli: `python -m llmcourse <command>`, one module per command."""
