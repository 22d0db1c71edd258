"""`python -m llmcourse prepare`: convert the bundled GGUF model to the safetensors cache, once."""
from __future__ import annotations



def add_arguments(p) -> None:
    p.add_argument("--force", action="store_true", help="prepare again even if the cache is there")


def run(args) -> int:
    from llmcourse.models.loading import bundled_model_dir, bundled_model_ready, prepare_bundled_model

    if bundled_model_ready() and not args.force:
        print(f"Bundled model ready: {bundled_model_dir()}")
        return 0
    prepare_bundled_model(force=args.force)
    return 0
