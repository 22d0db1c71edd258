"""`check-course`: for instructors before a workshop — doctor, then every notebook executed, in order."""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from llmcourse.core.errors import CourseError
from llmcourse.core.fastmode import FAST_ENV
from llmcourse.core.paths import repo_file
from llmcourse.course.doctor import report, run_checks


@dataclass
class NotebookResult:
    name: str
    ok: bool
    seconds: float
    peak_mb: float
    error: str = ""


def course_notebooks(root: Path | None = None, solutions: bool = False) -> list[Path]:
    """The lessons in order (00_…, 01_…), optionally followed by their solutions."""
    root = root or repo_file("notebooks") or Path("notebooks")
    if not root.is_dir():
        raise CourseError(f"No notebooks folder at {root}. Run check-course from a checkout of the course "
                          "or pass --notebooks PATH.")
    found = sorted(root.glob("[0-9][0-9]_*.ipynb"))
    if solutions:
        found += sorted((root / "solutions").glob("*.ipynb"))
    return found


class PeakMemory:
    """Samples the resident memory of this process's children (the kernel) in a background thread."""

    def __init__(self, every: float = 0.25):
        import psutil

        self._me, self._every, self.peak = psutil.Process(), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            total = 0
            for child in self._me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except Exception:  # a process that just exited
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self._every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run_notebook(path: Path, out_dir: Path, fast: bool = True, timeout: int = 3600) -> NotebookResult:
    """Execute one notebook in its own folder; write the executed copy to out_dir (never over the original)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    # fast runs keep their runs in out_dir, so they never replace a learner's named run (e.g. 03-one-epoch)
    settings = {FAST_ENV: "1" if fast else "0"} | ({"LLMCOURSE_RUNS": str(out_dir / "runs")} if fast else {})
    env_before = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    start = time.perf_counter()
    error = ""
    try:
        with PeakMemory() as mem:
            client = NotebookClient(nb, timeout=timeout, kernel_name=nb.metadata.get("kernelspec", {}).get("name", "llm"),
                                    resources={"metadata": {"path": str(path.parent)}})
            try:
                client.execute()
            except CellExecutionError as e:
                lines = [l for l in str(e).splitlines() if l.strip()]
                error = lines[-1] if lines else "cell failed"
            except Exception as e:  # kernel died, timeout, missing kernel
                error = f"{type(e).__name__}: {e}".splitlines()[0]
    finally:
        for name, value in env_before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / path.name)
    return NotebookResult(path.stem, not error, time.perf_counter() - start, mem.peak / 1e6, error)


def format_table(results: list[NotebookResult]) -> str:
    """A plain-text table: notebook, status, seconds, peak memory."""
    width = max([len(r.name) for r in results] + [8])
    lines = [f"{'notebook':<{width}}  status  seconds  peak MB", "-" * (width + 28)]
    for r in results:
        lines.append(f"{r.name:<{width}}  {'ok' if r.ok else 'FAILED':<6}  {r.seconds:7.0f}  {r.peak_mb:7.0f}")
        if r.error:
            lines.append(f"{'':<{width}}    -> {r.error}")
    total = sum(r.seconds for r in results)
    lines.append(f"{'total':<{width}}  {sum(r.ok for r in results)}/{len(results)} ok {total:6.0f}")
    return "\n".join(lines)


def check_course(output_dir="executed", *, full: bool = False, solutions: bool = False, notebooks=None,
                 only=None, skip_doctor: bool = False) -> int:
    """Doctor, then execute the notebooks (fast mode unless full) into output_dir and print a table; 0 if all ran."""
    notebooks = course_notebooks(Path(notebooks) if notebooks else None, solutions)
    if only:
        notebooks = [p for p in notebooks if p.name.startswith(tuple(only))]
    out_dir = Path(output_dir).resolve()
    if any(out_dir == p.parent.resolve() for p in notebooks):
        raise CourseError(f"--output-dir {output_dir} is the notebooks folder: executed copies would overwrite "
                          "the lessons. Name another folder.")
    if not skip_doctor:
        print("== doctor ==")
        if report(run_checks()) != 0:
            print("\nFix the environment first (above), then run check-course again.")
            return 1
    mode = "full (real default settings)" if full else "fast (LLMCOURSE_FAST=1)"
    print(f"\n== executing {len(notebooks)} notebooks, {mode}; executed copies in {out_dir} ==")
    results = []
    for path in notebooks:
        print(f"  {path.name} ...", flush=True)
        results.append(run_notebook(path, out_dir, fast=not full))
    print("\n" + format_table(results))
    return 0 if all(r.ok for r in results) else 1
