"""Real `train` processes killed at points a seeded random generator picks: nothing in the run store is lost.

30 SIGKILLs spread over the training steps, the checkpoint saves and the final save, then 10 SIGINTs and 10
SIGTERMs spread the same way (a signal during the final save lets it finish). The processes come from tests/fault_child.py, which imports the
course once and forks one process per command line (each a real `python -m llmcourse train`), and which holds the
hooks that send the signal at the chosen write or step. After each kill the store holds no "running" record of a dead
process, and the run loads, or resumes to its end and loads, or is listed as died with the line that says what is
left; every earlier run stays byte-identical.
"""
import hashlib
import json
import os
import queue
import random
import re
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from llmcourse.training.runs import died_line, last_complete_checkpoint, load_run

SEED = 20261202
ROWS = [{"question": f"What is the code of box {i}?", "answer": f"Box {i} has code {i * 7 % 10}{i % 3}."}
        for i in range(24)]
TRAIN = ["train", "--model", "tiny-random", "--lora", "--max-steps", "12", "--save-steps", "4", "--save-total-limit",
         "2", "--eval-steps", "0", "--per-device-train-batch-size", "2", "--compile", "false", "--quiet"]
EXIT = {"KILL": -9, "INT": 0, "TERM": -15}  # INT: stopped (or finished) with a checkpoint, exit 0; TERM: then dies of it


class Server:
    """tests/fault_child.py: one forked `train` process per job, each answered with its exit code; jobs from
    several threads run side by side."""

    def __init__(self, root: Path):
        self.root, self.jobs, self.lock, self.answers = root, 0, threading.Lock(), {}
        self.data = root / "qa.jsonl"
        self.data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
        env = {**os.environ, "LLMCOURSE_RUNS": str(root / "runs"), "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("fault_child.py"))], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            answer = json.loads(line)
            self.answers[answer["id"]].put(answer["returncode"])

    def run(self, argv, fault=None, events=False, load=None):
        with self.lock:
            self.jobs += 1
            job, box = self.jobs, queue.Queue(1)
            self.answers[job] = box
            spec = {"id": job, "argv": argv, "load": load, "fault": fault, "log": str(self.root / f"job-{job}.log"),
                    "events": str(self.root / "events.json") if events else None,
                    "fired": str(self.root / f"fired-{job}.json")}
            self.proc.stdin.write(json.dumps(spec) + "\n")
            self.proc.stdin.flush()
        code = self.answer(box)
        fired = Path(spec["fired"])
        return code, Path(spec["log"]).read_text(errors="replace"), json.loads(fired.read_text()) if fired.is_file() else None

    def answer(self, box):
        for _ in range(600):
            try:
                return box.get(timeout=1)
            except queue.Empty:
                assert self.proc.poll() is None, f"the fault server ended with {self.proc.returncode}"
        raise AssertionError("a job ran for over 10 minutes")

    def train(self, name, fault=None, events=False):
        return self.run([*TRAIN, "--data", str(self.data), "--run-name", name], fault, events)

    def load(self, run_folder: Path) -> None:
        code, log, _ = self.run([], load=str(run_folder))
        assert code == 0 and "Traceback" not in log, (run_folder.name, log[-3000:])

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("faults"))
    yield s
    s.close()


@pytest.fixture(scope="module")
def store(server, points):
    """Shared by the tests of this module: each one's runs stay untouched through the next ones."""
    s = Store(server)
    folder = server.root / "runs" / "calibration"
    s.prints["calibration"], s.sealed["calibration"] = fingerprint(folder), digest(folder)
    return s


@pytest.fixture(scope="module")
def points(server):
    """The events of one whole run, by stratum: steps (from the first step on), checkpoint saves, final save."""
    code, log, _ = server.train("calibration", events=True)
    assert code == 0, log[-2000:]
    events = json.loads((server.root / "events.json").read_text())
    first_step = next(e["at"] for e in events if e["kind"] == "step")
    strata = {"steps": [e for e in events if e["phase"] == "steps" and e["at"] >= first_step],
              "checkpoint": [e for e in events if e["phase"] == "checkpoint"],
              "final": [e for e in events if e["phase"] == "final"]}
    assert all(len(v) >= 10 for v in strata.values()), {k: len(v) for k, v in strata.items()}
    return strata


def fingerprint(folder: Path) -> dict:
    """Every file of a run folder with its size and modification time: any write changes one of them."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def same_event(planned: dict, fired: dict, name: str) -> bool:
    norm = lambda e: (e["phase"], e["kind"], re.sub(r"\.\d+\.tmp$", ".tmp", (e["path"] or "").split("/", 1)[-1]))
    return fired["at"] == planned["at"] and norm(planned) == norm(fired) and (fired["path"] or name).startswith(name)


def recover(server, name: str) -> str:
    """What the course makes of a killed run: 'loaded', 'resumed' (then loaded) or 'died' (listed, nothing to
    resume); anything else fails the test."""
    run = load_run(server.root / "runs" / name)
    if run.status in ("finished", "stopped") and (run.path / "model").is_dir():
        server.load(run.path)
        return "loaded"
    assert run.died and run.status == "died", (name, run.status, run.message)  # and said so on disk too
    line = died_line(run)
    assert line.startswith(f"{name}: died at step ") and "(its process " in line
    if last_complete_checkpoint(run.path / "checkpoints") is None:
        assert "nothing can be resumed" in line and "runs delete" in line, line
        return "died"
    assert f"`python -m llmcourse train --resume {name}`" in line, line
    code, log, _ = server.run(["train", "--resume", name, "--quiet"])
    assert code == 0 and "Traceback" not in log, log[-3000:]
    run = load_run(run.path)
    assert run.status == "finished" and run.history[-1]["step"] == 12, (run.status, run.history[-1:])
    server.load(run.path)
    return "resumed"


def no_running_record_of_a_dead_process(server, busy: set, killed: str) -> None:
    """On disk, no record says running but the killed run's (its process died mid-run) and those of runs training
    now; reading the killed one marks it died, on disk too."""
    for path in sorted((server.root / "runs").iterdir()):
        if not (path / "run.json").is_file() or path.name in busy:
            continue
        before = json.loads((path / "run.json").read_text())["status"]
        assert before != "running" or path.name == killed, (path.name, before)
        load_run(path)
        after = json.loads((path / "run.json").read_text())["status"]
        assert after == ("died" if before == "running" else before), (path.name, before, after)


class Store:
    """What every lane of faults shares: the runs being trained now, and the files of each run already done."""

    def __init__(self, server):
        self.server, self.lock, self.busy, self.prints, self.sealed = server, threading.Lock(), set(), {}, {}

    def fault(self, name, sig, event, check) -> str:
        with self.lock:
            self.busy.add(name)
        code, log, fired = self.server.train(name, fault={"at": event["at"], "signal": sig})
        assert fired and same_event(event, fired, name), (name, event, fired, log[-2000:])
        assert code == EXIT[sig] and "Traceback" not in log, (name, sig, event, code, log[-3000:])
        with self.lock:
            busy = self.busy - {name}  # the other lane's run may be training (or resuming) right now
        no_running_record_of_a_dead_process(self.server, busy, name)
        outcome = check(name, sig)
        with self.lock:
            self.busy.discard(name)
            done = dict(self.prints)
        for other, prints in done.items():
            assert fingerprint(self.server.root / "runs" / other) == prints, f"{other} changed while {name} ran"
        folder = self.server.root / "runs" / name
        with self.lock:
            self.prints[name], self.sealed[name] = fingerprint(folder), digest(folder)
        return outcome


def inject(store, plan: list, check, capsys) -> Counter:
    """Run the plan's (name, signal, event)s in two lanes (one per core), check what each leaves, and keep every
    run done before (in this test or an earlier one) untouched."""
    server = store.server

    def lane(part):
        return [store.fault(name, sig, event, check) for name, sig, event in part]

    with ThreadPoolExecutor(2) as pool:
        outcomes = [o for f in [pool.submit(lane, plan[0::2]), pool.submit(lane, plan[1::2])] for o in f.result()]
    tally = Counter(outcomes)
    damaged = [n for n, d in store.sealed.items() if digest(server.root / "runs" / n) != d]
    with capsys.disabled():  # the tally shows in every run of the suite, not only with -s
        print(f"\n{sum(tally.values())}/{len(plan)} SIG{plan[0][1]} faults recovered ({dict(tally)}), "
              f"{len(damaged)} runs damaged")
    assert not damaged and sum(tally.values()) == len(plan)
    return tally


def test_30_sigkills_over_steps_checkpoints_and_the_final_save_lose_nothing(server, points, store, capsys):
    rng = random.Random(SEED)
    chosen = [e for stratum in ("steps", "checkpoint", "final") for e in rng.sample(points[stratum], 10)]
    plan = [(f"kill-{i:02d}", "KILL", e) for i, e in enumerate(chosen)]
    tally = inject(store, plan, lambda name, sig: recover(server, name), capsys)
    assert tally["resumed"] > 0 and tally["died"] > 0, tally  # the seed reaches both kinds of kill


@pytest.mark.parametrize("sig", ["INT", "TERM"])
def test_10_sigints_and_10_sigterms_end_with_a_checkpoint(server, points, store, sig, capsys):
    rng = random.Random(f"{SEED}-{sig}")
    chosen = [e for stratum, n in (("steps", 4), ("checkpoint", 3), ("final", 3)) for e in rng.sample(points[stratum], n)]

    def check(name, sig):
        run = load_run(server.root / "runs" / name)
        assert run.status in ("stopped", "finished") and not run.died, (name, run.status, run.message)
        step = run.history[-1]["step"]
        assert last_complete_checkpoint(run.path / "checkpoints").endswith(f"checkpoint-{step}"), name
        if run.status == "stopped":  # the hint names the command line's form, where the run was started
            assert f"`python -m llmcourse train --resume {name}` continues exactly from here" in run.message
        assert (run.path / "model" / "adapter_model.safetensors").is_file() and not (run.path / "model.partial").exists()
        return recover(server, name)

    inject(store, [(f"{sig.lower()}-{i:02d}", sig, e) for i, e in enumerate(chosen)], check, capsys)
