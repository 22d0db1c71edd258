"""`doctor`: check that this machine can run the course, and say exactly what to fix."""
from __future__ import annotations

import importlib.metadata as md
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from llmcourse.core.paths import repo_file

MIN_DISK_GB = 3.0
MIN_RAM_GB = 4.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def requirements_file() -> Path | None:
    """requirements.txt of the checkout this package runs from (None for a non-editable install)."""
    return repo_file("requirements.txt")


def parse_pins(text: str) -> dict[str, str]:
    """{'torch': '2.13.0', ...} from `name==version  # comment` lines."""
    pins = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*==\s*([^\s#;]+)", line)
        if m:
            pins[re.sub(r"\[.*\]", "", m.group(1))] = m.group(2)
    return pins


def check_python() -> Check:
    v = sys.version_info
    ok = (3, 10) <= (v.major, v.minor) <= (3, 12)
    return Check("Python", ok, f"{v.major}.{v.minor}.{v.micro} ({sys.executable})",
                 "The course supports Python 3.10–3.12: delete .venv and run ./setup_kernel.sh with one of those.")


def check_packages() -> Check:
    req = requirements_file()
    if req is None:
        return Check("packages", True, "no requirements.txt next to the package (not a checkout); skipped", required=False)
    from llmcourse.course.bundle import learner_pins

    wrong = []
    pins = parse_pins(req.read_text())
    tests_only = set(pins) - set(parse_pins("\n".join(learner_pins(req.read_text()))))
    for name, want in pins.items():
        try:
            have = md.version(name)
        except md.PackageNotFoundError:
            if name not in tests_only:  # an offline (learner) install has no test tools
                wrong.append(f"{name} missing (want {want})")
            continue
        if have.split("+")[0] != want:
            wrong.append(f"{name} {have} (want {want})")
    if wrong:
        return Check("packages", False, "; ".join(wrong[:6]) + (" ..." if len(wrong) > 6 else ""),
                     "Run ./setup_kernel.sh --force to install the pinned versions.")
    return Check("packages", True, f"{len(pins)} pinned packages match requirements.txt")


def check_kernel() -> Check:
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        specs = KernelSpecManager().get_all_specs()
    except Exception as e:  # jupyter not installed at all
        return Check("Jupyter kernel", False, f"cannot list kernels ({e})", "Run ./setup_kernel.sh.")
    spec = specs.get("llm")
    if spec is None:
        return Check("Jupyter kernel", False, "kernel 'llm' is not registered",
                     "Run ./setup_kernel.sh (or: .venv/bin/python -m ipykernel install --sys-prefix --name llm "
                     "--display-name 'Python (LLM)').")
    argv0 = spec["spec"]["argv"][0]
    return Check("Jupyter kernel", True, f"'llm' ({spec['spec']['display_name']}) -> {argv0}")


def check_device() -> Check:
    import torch

    from llmcourse.models.loading import pick_device

    dev = pick_device("auto")
    if dev.type == "cuda":
        detail = f"CUDA: {torch.cuda.get_device_name(0)}"
    elif dev.type == "mps":
        detail = "Apple MPS"
    else:
        detail = f"CPU, {torch.get_num_threads()} threads (no GPU: the course is sized for this)"
    return Check("device", True, f"{detail}; torch {torch.__version__}")


def check_precision() -> Check:
    """Whether LLMCOURSE_PRECISION forces what precision='auto' picks on a CPU (tests run as on another CPU)."""
    from llmcourse.core.errors import CourseError
    from llmcourse.core.hardware import PRECISION_ENV, forced_cpu_precision

    try:
        forced = forced_cpu_precision()
    except CourseError as e:
        return Check("precision", False, str(e), f"Set {PRECISION_ENV} to bf16 or fp32, or unset it.")
    if forced is None:
        return Check("precision", True, f"'auto' measures this CPU ({PRECISION_ENV} unset)", required=False)
    return Check("precision", True, f"'auto' is {forced} on a CPU: forced by {PRECISION_ENV}={forced}",
                 required=False)


def check_compiler() -> Check:
    """Whether torch.compile can build CPU kernels here (TrainConfig.compile); without a C++ compiler training runs
    eagerly: the same results, without compiling's speed-up."""
    from llmcourse.core.paths import inductor_cache
    from llmcourse.training.compiling import compiler_problem

    problem = compiler_problem("cpu")
    if problem:
        return Check("compiler", False, f"{problem}: training runs eagerly (same results, compile=true does nothing)",
                     required=False)
    return Check("compiler", True, f"torch.compile can build CPU kernels; they are cached in {inductor_cache()}",
                 required=False)


def check_disk() -> Check:
    from llmcourse.models.loading import cache_dir

    where = cache_dir()
    probe = where if where.exists() else Path.home()
    free = shutil.disk_usage(probe).free / 1e9
    return Check("disk", free >= MIN_DISK_GB, f"{free:.1f} GB free at {probe}",
                 f"Free at least {MIN_DISK_GB:.0f} GB (models, checkpoints and runs), or set LLMCOURSE_CACHE to a bigger disk.")


def check_ram() -> Check:
    import psutil

    mem = psutil.virtual_memory()
    total, avail = mem.total / 1e9, mem.available / 1e9
    return Check("RAM", avail >= MIN_RAM_GB, f"{avail:.1f} GB available of {total:.1f} GB",
                 f"Close other programs: training the 135M model needs about {MIN_RAM_GB:.0f} GB free.")


def check_ram_per_notebook() -> Check:
    """Each notebook's peak memory (check-course --full) against the RAM available now, in the mode that applies."""
    from llmcourse.training.lowmem import available_gb, low_memory, ram_per_notebook

    avail = available_gb()
    ok, detail, fix = ram_per_notebook(avail, low_memory(avail))
    return Check("notebook RAM", ok, detail if ok else f"{detail}. {fix}", fix, required=False)  # a warning shows no fix list


def check_model() -> Check:
    from llmcourse.models.loading import bundled_model_dir, bundled_model_ready, find_bundled_gguf

    if bundled_model_ready():
        return Check("bundled model", True, f"SmolLM2-135M-Instruct ready at {bundled_model_dir()}")
    try:
        gguf = find_bundled_gguf()
    except Exception as e:
        return Check("bundled model", False, str(e), "Run ./setup_kernel.sh.")
    return Check("bundled model", False, f"{gguf.name} installed but not prepared yet",
                 "Run: python -m llmcourse prepare (once, about 30 s).")


def check_allocator() -> Check:
    from llmcourse.core import malloc

    if not malloc.applies():
        return Check("allocator", True, "not glibc, or LLMCOURSE_MALLOC=system: nothing to set", required=False)
    if malloc.is_set():
        return Check("allocator", True, f"glibc with {malloc.TUNABLE} (a few hundred MB less when training)",
                     required=False)
    return Check("allocator", False, "glibc's per-thread cache is on here, so training holds a few hundred MB more. "
                 "Pick the kernel 'Python (LLM)' (./setup_kernel.sh registers it with the setting), or start "
                 f"Jupyter with GLIBC_TUNABLES={malloc.TUNABLE}", required=False)


def check_lamini() -> Check:
    from dotenv import dotenv_values

    env_file = Path.cwd() / ".env"
    has = bool(os.environ.get("LAMINI_API_KEY")) or bool(env_file.is_file() and dotenv_values(env_file).get("LAMINI_API_KEY"))
    detail = "LAMINI_API_KEY is set (optional hosted model enabled)" if has else \
        "no LAMINI_API_KEY (optional: notebooks use the local model instead)"
    return Check("Lamini key", True, detail, required=False)


def run_checks() -> list[Check]:
    checks = []
    for fn in (check_python, check_packages, check_kernel, check_device, check_precision, check_compiler, check_disk, check_ram,
               check_ram_per_notebook, check_model, check_allocator, check_lamini):
        try:
            checks.append(fn())
        except Exception as e:  # a broken package must not hide the other checks
            checks.append(Check(fn.__name__.removeprefix("check_"), False, f"check failed: {e}", "Run ./setup_kernel.sh --force."))
    return checks


def report(checks: list[Check]) -> int:
    width = max(len(c.name) for c in checks)
    for c in checks:
        mark = "ok " if c.ok else ("FAIL" if c.required else "warn")
        print(f"[{mark:>4}] {c.name:<{width}}  {c.detail}")
    failed = [c for c in checks if not c.ok and c.required]
    if failed:
        print("\nTo fix:")
        for c in failed:
            print(f"  - {c.name}: {c.fix}")
        return 1
    print("\nAll good: the course is ready on this machine.")
    return 0
