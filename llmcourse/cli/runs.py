"""The `runs` command: list, show, delete and prune the saved runs.

    python -m llmcourse runs                 every run: name, status, learning rate, steps, losses, size on disk
    python -m llmcourse runs show NAME       one run's settings, outcome and files
    python -m llmcourse runs delete NAME     delete one run (its exact name or folder)
    python -m llmcourse runs prune           delete the checkpoints of finished runs (their final models stay)
"""
from __future__ import annotations


def add_arguments(p):
    p.add_argument("action", nargs="?", default="list", choices=("list", "show", "delete", "prune"),
                   help="list (default), show NAME, delete NAME, prune")
    p.add_argument("name", nargs="?", default=None,
                   help="show: a run name, name prefix (newest match) or folder; delete: an exact name or folder")
    p.add_argument("--prefix", default=None, help="list: only runs whose name starts with this")
    p.add_argument("--force", action="store_true", help="delete: even a run whose process is still training")


def _size(n: int) -> str:
    return f"{n / 2**30:.2f} GB" if n >= 2**30 else f"{n / 2**20:.1f} MB"


def run(args) -> int:
    from llmcourse.core.errors import CourseError
    from llmcourse.training.runs import (delete_run, died_line, disk_size, find_run, list_runs, load_run, prune_runs,
                                         runs_dir)

    if args.action in ("show", "delete") and not args.name:
        raise CourseError(f"`runs {args.action}` needs a run name, e.g. python -m llmcourse runs {args.action} "
                          "lora-r64-lr1e-03-cosine-1ep-1130-142501 (`python -m llmcourse runs` lists them).")
    if args.action == "list":
        runs = list_runs(args.prefix)
        if not runs:
            print(f"No runs in {runs_dir()} yet.")
            return 0
        sizes = [disk_size(r.path) for r in runs]
        width = max(len(r.name) for r in runs)
        print(f"{'run':<{width}}  {'status':<11} {'lr':>8} {'steps':>6} {'train':>7} {'eval':>7}  {'size':>9}")
        for r, size in zip(runs, sizes):
            s = r.summary()
            losses = [f"{v:7.3f}" if v is not None else f"{'-':>7}" for v in (s["train loss"], s["eval loss"])]
            print(f"{r.name:<{width}}  {'died' if r.died else r.status:<11} {s['lr']:>8.1e} {s['steps']:>6} "
                  f"{losses[0]} {losses[1]}  {_size(size):>9}")
        for r in runs:
            if r.died:
                print(died_line(r))
        print(f"{len(runs)} runs, {_size(sum(sizes))} in {runs_dir()}")
    elif args.action == "show":
        r = load_run(find_run(args.name))
        print(repr(r))
        if r.died:
            print(died_line(r))
        print(f"folder: {r.path} ({_size(disk_size(r.path))})")
        for part in ("model", "checkpoints", "eval"):
            if (r.path / part).is_dir():
                print(f"  {part}/: {_size(disk_size(r.path / part))}")
        print("settings: " + (" ".join(r.config.to_args()) or "(the defaults)"))
        if r.message:
            print(r.message)
    elif args.action == "delete":
        path, size = delete_run(args.name, force=args.force)
        print(f"deleted {path} ({_size(size)})")
    else:
        freed = prune_runs()
        for folder, size in freed:
            print(f"deleted {folder} ({_size(size)})")
        print(f"pruned {len(freed)} finished runs' checkpoints, {_size(sum(s for _, s in freed))} freed"
              if freed else "No finished run holds checkpoints: nothing to prune.")
    return 0
