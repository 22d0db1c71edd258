"""`python -m llmcourse bench`: how fast the course trains and generates here, against the original course and TRL.

Each run is a separate process (the scripts in the repository's benchmarks/ folder), so its peak memory is its
own. Same model, same shipped data, same number of optimizer steps for every training run; real tokens are the
non-padding ones. Model-FLOPs utilisation (MFU) = 6 x parameters x real tokens / time / the matmul peak measured
here for the precision that run used. A benchmark, not a test: the numbers belong to the machine it ran on.
"""
from __future__ import annotations

import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llmcourse.core.errors import CourseError
from llmcourse.core.paths import BUNDLED, repo_file
from llmcourse.core.malloc import TUNABLE, is_set, tuned_env

TRL_PIN = "1.16.0"  # pyproject.toml's `bench` extra; kept out of requirements.txt
TRAIN_RUNS = ("A", "B", "C", "D", "R")
EXTRA_RUNS = ("B32", "P", "CM", "DM")  # TRL in fp32, an eager plain loop, C and D saving memory: by name only
DEFAULT_RUNS = (*TRAIN_RUNS, "G")
PROBES = 5  # the matmul peak is the best of this many short probes: one long probe moves with the machine's load
GB = 1e9


def benchmarks_dir() -> Path:
    """The repository's benchmarks/ folder, which holds the per-run scripts."""
    folder = repo_file("benchmarks")
    if folder is None or not (folder / "train_speed.py").is_file():
        raise CourseError(f"The benchmark scripts are not at {folder}: `bench` runs from a clone of the llmcourse "
                          "repository (pip install -e .), not from an installed wheel.")
    return folder


def machine() -> dict:
    """What the numbers depend on: processor, cores, instruction set, threads, library versions."""
    import torch

    from llmcourse.core.hardware import cpu_name, cpu_summary

    versions = {p: _version(p) for p in ("torch", "transformers", "peft", "trl")}
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "isa_threads": cpu_summary(), "platform": platform.platform(),
            "allocator": f"glibc, {TUNABLE}" if is_set(tuned_env()) else "the system's default",
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "versions": versions}


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def load() -> list[float] | None:
    """1/5/15-minute load average: above the core count, other work was slowing the runs down."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def linear_gflops(dtype, n: int, min_seconds: float, device: str = "cpu") -> float:
    """GFLOP/s of F.linear, the op a Linear layer runs: on CPUs without native bf16 it is faster than a @ b."""
    import torch

    x, w = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    torch.nn.functional.linear(x, w)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds or not done:
        torch.nn.functional.linear(x, w)
        done += 1
        if device == "cuda":
            torch.cuda.synchronize()
    return 2 * n**3 * done / (time.perf_counter() - start) / 1e9


def measure_peaks() -> dict:
    """Measured peak GFLOP/s per precision on the device the runs use: the best of PROBES short probes each of
    a @ b and F.linear."""
    import torch

    from llmcourse.core.hardware import bf16_speedup, matmul_gflops
    from llmcourse.models.loading import pick_device

    device = pick_device("auto").type
    n = 4096 if device == "cuda" else 2048
    fast_bf16 = bf16_speedup(device) >= 0.5  # emulated bf16 is 3-50x slower: a smaller matrix keeps the probe short
    formats = {"fp32": torch.float32, "bf16": torch.bfloat16, **({"fp16": torch.float16} if device == "cuda" else {})}
    peaks = {"device": device, "n": n}
    for name, dtype in formats.items():
        size, seconds = (n, 0.3) if name != "bf16" or fast_bf16 else (512, 0.1)
        peaks[name] = round(max(max(matmul_gflops(dtype, n=size, min_seconds=seconds, device=device),
                                    linear_gflops(dtype, size, seconds, device)) for _ in range(PROBES)), 1)
    peaks["bf16_vs_fp32"] = round(peaks["bf16"] / peaks["fp32"], 3)
    return peaks


def run_child(script: Path, argv: list[str], timeout: float | None, log_dir: Path, threads: int | None = None) -> dict:
    """Run one benchmark script in a fresh process and return its JSON result (or the error, with the log's tail)."""
    name = argv[0] if not argv[0].startswith("-") else "G"
    out, log = log_dir / f"{name}.json", log_dir / f"{name}.log"
    env = tuned_env({**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false",
                     "LLMCOURSE_RUNS": str(log_dir / "runs")})  # every recipe gets the same allocator setting
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(log, "w") as f:
        try:
            code = subprocess.run([sys.executable, str(script), *argv, "--out", str(out)], stdout=f,
                                  stderr=subprocess.STDOUT, cwd=script.parent, env=env, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return {"recipe": name, "error": f"stopped after {timeout:g} s (--timeout)"}
    if code != 0 or not out.is_file():
        tail = log.read_text(errors="replace").strip().splitlines()[-12:]
        return {"recipe": name, "error": f"exit code {code}", "log_tail": tail}
    return json.loads(out.read_text())


def add_mfu(result: dict, peaks: dict) -> None:
    """MFU (training.cost.mfu) of a run against the measured peak of the precision the run used."""
    from llmcourse.training.cost import mfu

    peak = peaks.get(result.get("precision"))
    if peak and result.get("tokens_per_s"):
        result["peak_gflops"] = peak
        result["mfu"] = round(mfu(result["params"], result["tokens_per_s"], peak), 4)


def compare(runs: dict, generation: dict | None, peaks: dict) -> tuple[dict, list[dict]]:
    """Speed ratios between runs, and each target of issue 7 with whether it holds here (None: not measurable)."""
    from llmcourse.training.cost import mfu

    def tps(k):
        return (runs.get(k) or {}).get("tokens_per_s")

    ratios = {f"{a}/{b}": round(tps(a) / tps(b), 2) for a, b in
              (("C", "R"), ("D", "R"), ("C", "B"), ("C", "A"), ("D", "C"), ("C", "B32"), ("C", "P"), ("R", "P"))
              if tps(a) and tps(b)}
    targets = []

    def target(what, value, holds, note=""):
        targets.append({"target": what, "value": value, "holds": holds, "note": note})

    native_bf16 = peaks.get("bf16_vs_fp32", 0) > 1
    c_over_b = 2.5 if native_bf16 else 3.0  # TRL's bf16 default is emulated, hence slow, without native bf16
    for key, goal in (("C/R", 0.85), ("C/B", c_over_b), ("C/A", 6.0), ("D/C", 1.5)):
        if key in ratios:
            target(f"tokens/s {key} >= {goal:g}x", ratios[key], ratios[key] >= goal,
                   f"{'native' if native_bf16 else 'emulated'} bf16" if key == "C/B" else "")
    c, b = runs.get("C") or {}, runs.get("B") or {}
    if c.get("final_loss") is not None and b.get("final_loss") is not None:
        target("C final loss <= B final loss", [c["final_loss"], b["final_loss"]], c["final_loss"] <= b["final_loss"])
    if c.get("mfu") is not None:
        if native_bf16:
            share = mfu(c["params"], c["tokens_per_s"], peaks["bf16"])
            target("C MFU >= 45% of the bf16 peak", round(share, 4), share >= 0.45)
        else:
            target("C MFU >= 45% of the bf16 peak", None, None, f"no fast bf16 here (bf16 = {peaks.get('bf16_vs_fp32')}x "
                   f"fp32); C's MFU against the {c['precision']} peak is {c['mfu']:.0%}")
    for key, limit in (("C", 3.0), ("D", 1.5), ("CM", 3.0), ("DM", 1.5)):
        if (runs.get(key) or {}).get("peak_rss_mb"):
            gb = round(runs[key]["peak_rss_mb"] * 2**20 / GB, 2)
            target(f"{key} peak RSS <= {limit:g} GB", gb, gb <= limit)
    if generation and "speedup" in generation:
        target("generation batch 16 >= 5x batch 1 tokens/s", generation["speedup"], generation["speedup"] >= 5)
        fair = generation["questions"] >= 100
        target("100 held-out questions answered in <= 60 s", generation["answer_seconds"],
               generation["answer_seconds"] <= 60 if fair else None,
               "" if fair else f"only {generation['questions']} questions asked")
    return ratios, targets


def format_report(report: dict) -> str:
    """The report as a plain-text table (what `bench` prints)."""
    m, p, ld = report["machine"], report["peaks"], report["load"]
    lines = [f"llmcourse bench · {report['date']} · {m['cpu']} ({m['cores']} cores) · {m['isa_threads']}"
             + (f" · allocator: {m['allocator']}" if m.get("allocator") else ""),
             f"load average before {ld['before']} after {ld['after']} (1/5/15 min; above {m['cores']} = contended)",
             f"model {report['model']} · {report['steps']} optimizer steps per training run · kettlebird train split"
             f" · C/D/CM/DM with compile={report.get('compile', 'true')}",
             "real tok/s and s/step: after the first 2 steps (warm-up, compiling), whose seconds are shown apart; "
             "compile: torch's own count of seconds spent compiling",
             f"matmul peak (measured): fp32 {p['fp32']:g} GFLOP/s · bf16 {p['bf16']:g} GFLOP/s "
             f"({p['bf16_vs_fp32']:g}x fp32)", ""]
    head = f"{'run':<4} {'recipe':<58} {'prec':<5} {'batch':>6} {'real tok/s':>10} {'s/step':>7} {'first 2':>7} " \
           f"{'compile':>7} {'peak RSS':>9} {'final loss':>10} {'MFU':>6}"
    lines += [head, "-" * len(head)]
    for key, r in report["runs"].items():
        if "error" in r or "skipped" in r:
            lines.append(f"{key:<4} {r.get('skipped') or r['error']}")
            continue
        batch = f"{r['batch_size']}x{r['grad_accum']}" if r["grad_accum"] > 1 else str(r["batch_size"])
        mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "-"
        loss = f"{r['final_loss']:.3f}" if r.get("final_loss") is not None else "-"
        first = f"{r['warmup_seconds']:.1f}s" if r.get("warmup_steps") else "-"
        compiled = f"{r['compile_seconds']:.1f}s" if r.get("compile_seconds") is not None else "-"
        lines.append(f"{key:<4} {r['label'][:58]:<58} {r['precision']:<5} {batch:>6} {r['tokens_per_s']:>10.1f} "
                     f"{r['s_per_step']:>7.2f} {first:>7} {compiled:>7} {r['peak_rss_mb'] * 2**20 / GB:>6.2f} GB "
                     f"{loss:>10} {mfu:>6}")
    g = report.get("generation")
    if g and "error" in g:
        lines += ["", f"G    {g['error']}"]
    elif g:
        b = g["batch"]
        lines += ["", f"generation (greedy, KV cache, left padding, up to {g['max_new_tokens']} new tokens): batch 1 "
                  f"{g['batch1_tokens_per_s']:g} tok/s · batch {b} {g[f'batch{b}_tokens_per_s']:g} tok/s "
                  f"({g['speedup']:g}x) · {g['questions']} held-out questions in {g['answer_seconds']:g} s "
                  f"(batch {g.get('answer_batch', b)}) "
                  f"· peak RSS {g['peak_rss_mb'] * 2**20 / GB:.2f} GB"]
    if report["ratios"]:
        lines += ["", "ratios (real tokens/s): " + " · ".join(f"{k} {v:g}x" for k, v in report["ratios"].items())]
    if report["targets"]:
        lines += ["", "targets:"]
        for t in report["targets"]:
            mark = {True: "yes", False: "NO", None: "n/a"}[t["holds"]]
            lines.append(f"  [{mark:>3}] {t['target']}: {t['value']}" + (f" ({t['note']})" if t["note"] else ""))
    return "\n".join(lines)


def _default_json_path() -> Path:
    try:
        from llmcourse.training.runs import runs_dir
    except ImportError:
        runs_dir = lambda: Path("runs")  # noqa: E731
    return runs_dir() / f"bench-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"


def benchmark(only=None, *, model: str = BUNDLED, steps: int = 8, questions: int = 100, max_new_tokens: int = 64,
              json_path: Path | None = None, timeout: float | None = None, threads: int | None = None,
              compile: str = "true") -> int:
    """Run the benchmark: each requested run in its own process, then print the table and write the JSON.
    Returns 0, or 1 when a run failed."""
    folder = benchmarks_dir()
    wanted = list(dict.fromkeys(only or DEFAULT_RUNS))
    if steps < 1:
        raise CourseError(f"--steps {steps}: give at least 1 optimizer step.")
    if threads:
        import torch

        torch.set_num_threads(threads)  # the peak is measured with the runs' thread count
    report = {"date": f"{datetime.datetime.now():%Y-%m-%d %H:%M}", "model": model, "steps": steps, "compile": compile,
              "machine": machine(), "load": {"before": load()}}
    print(f"measuring the matmul peak ({report['machine']['isa_threads']}) ...", file=sys.stderr, flush=True)
    report["peaks"] = measure_peaks()
    report["runs"], report["generation"] = {}, None
    with tempfile.TemporaryDirectory(prefix="llmcourse-bench-") as tmp:
        for key in wanted:
            if key.startswith("B") and importlib.util.find_spec("trl") is None:
                msg = f"skipped: TRL is not installed (pip install trl=={TRL_PIN}, or pip install -e .[bench])"
                print(f"[{key}] {msg}", file=sys.stderr)
                report["runs"][key] = {"recipe": key, "skipped": msg}
                continue
            print(f"[{key}] running ...", file=sys.stderr, flush=True)
            start = time.perf_counter()
            if key == "G":
                argv = ["--model", model, "--questions", str(questions),
                        "--max-new-tokens", str(max_new_tokens)]
                report["generation"] = result = run_child(folder / "generation_speed.py", argv, timeout, Path(tmp),
                                                                 threads)
            else:
                argv = [key, "--model", model, "--steps", str(steps), "--compile", compile]
                report["runs"][key] = result = run_child(folder / "train_speed.py", argv, timeout, Path(tmp), threads)
                add_mfu(result, report["peaks"])
            status = result.get("error") or f"{time.perf_counter() - start:.0f} s"
            print(f"[{key}] {status}", *result.get("log_tail", []), sep="\n    ", file=sys.stderr, flush=True)
    report["load"]["after"] = load()
    report["ratios"], report["targets"] = compare(report["runs"], report["generation"], report["peaks"])
    print(format_report(report))
    path = json_path or _default_json_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    print(f"\nJSON report: {path}")
    failed = [k for k, r in [*report["runs"].items(), ("G", report["generation"] or {})] if "error" in r]
    return 1 if failed else 0
