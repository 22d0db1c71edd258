"""Test-wide settings: fast mode for every notebook, a headless plot backend, no hub access."""
import os
import tempfile

os.environ.setdefault("LLMCOURSE_FAST", "1")  # notebooks run their real code paths with tiny step counts
# the notebooks' runs go to a temporary folder, never into the repository's runs/ (03 replaces its named run)
os.environ.setdefault("LLMCOURSE_RUNS", tempfile.mkdtemp(prefix="llmcourse-test-runs-"))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the course never needs the hub; a test that tries fails fast
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("LLMCOURSE_LOW_MEMORY", "0")  # the same settings on every machine, whatever RAM is free
