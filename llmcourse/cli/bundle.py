"""`python -m llmcourse bundle`: every wheel a workshop room needs to install the course with no network."""
from __future__ import annotations

from llmcourse.course.bundle import TORCH_CPU_INDEX, build_bundle


def add_arguments(p) -> None:
    p.add_argument("--output", required=True, help="folder for the wheels (created; hand it out on a USB stick)")
    p.add_argument("--platform", default=None, help="pip platform tag of the laptops, e.g. win_amd64, "
                   "macosx_11_0_arm64, manylinux_2_28_x86_64 (default: this machine)")
    p.add_argument("--python", default=None, help="Python version of the laptops, e.g. 3.11 (default: this one)")
    p.add_argument("--with-model-cache", action="store_true", help="also copy the prepared bundled model (~0.5 GB)")
    p.add_argument("--torch-index", default=TORCH_CPU_INDEX, help="where the CPU build of torch comes from; '' = only the indexes pip is set up with")


def run(args) -> int:
    build_bundle(args.output, args.platform, args.python, args.torch_index, args.with_model_cache)
    return 0
