"""The run store: every run keeps its own folder, nothing the course did not make is deleted, bad records are skipped."""
import json
import os
import subprocess
import sys
import shutil
import socket
from datetime import datetime

import psutil
import pytest

from llmcourse import CourseError
from llmcourse.training.config import TrainConfig
from llmcourse.training.runs import died_line, find_run, list_runs, load_run, plan_run_folder, prune_runs, RunRecordWarning
from llmcourse.training.trainer import train

ROWS = [{"prompt": f"What is the code of box {i}?", "completion": f"Box {i} has code {i * 7 % 10}{i % 3}."}
        for i in range(12)]
DATA = {"train": ROWS[:10], "validation": ROWS[10:]}


@pytest.fixture(autouse=True)
def runs_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMCOURSE_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def fast(**kw):
    return TrainConfig.fast(**{"max_steps": 2, "per_device_train_batch_size": 4, "max_length": 48, "eval_steps": 0,
                               **kw})


def cli(*args, runs):
    env = {**os.environ, "LLMCOURSE_RUNS": str(runs)}
    return subprocess.run([sys.executable, "-m", "llmcourse", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def user_folder(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    return folder


def test_train_refuses_a_folder_it_did_not_make_and_leaves_it_as_it_was(tmp_path):
    folder = user_folder(tmp_path)
    with pytest.raises(CourseError, match=f"{folder} already holds files that are not a course run"):
        train(fast(output_dir=str(folder)), data=DATA, verbose=False)
    with pytest.raises(CourseError, match="already holds files"):
        train(fast(output_dir=str(folder)), data=DATA, verbose=False, overwrite=True)
    done = cli("train", "--model", "tiny-random", "--max-steps", "1", "--output-dir", str(folder), runs=tmp_path / "r")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"error: {folder} already holds files that are not a course run "
                                                "(no run.json), and training never deletes them. Choose another "
                                                "output_dir (CLI: --output-dir) or run_name."]
    assert [p.name for p in folder.iterdir()] == ["notes.txt"] and (folder / "notes.txt").read_text() == "my notes"


def test_a_file_as_output_dir_is_refused(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("x")
    with pytest.raises(CourseError, match="is a file, not a folder"):
        train(fast(output_dir=str(target)), data=DATA, verbose=False)
    assert target.read_text() == "x"


@pytest.mark.parametrize("name", ["..", "../x", "/", "a/b", "", " x", "a\\b"])
def test_run_names_that_would_leave_runs_are_refused(name, tmp_path, runs_in_tmp):
    user_folder(tmp_path)
    with pytest.raises(CourseError, match="TrainConfig.run_name=.*one folder name under runs/"):
        train(fast(run_name=name), data=DATA, verbose=False)
    if name == "":
        return  # on the command line an empty value means "the default name"
    done = cli("train", "--model", "tiny-random", "--run-name", name, runs=runs_in_tmp)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "run_name" in done.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "my notes" and not runs_in_tmp.exists()


def test_no_run_is_ever_replaced_unless_asked(runs_in_tmp):
    a = train(fast(warmup_ratio=0.0), data=DATA, verbose=False, estimate=False)
    b = train(fast(warmup_ratio=0.5), data=DATA, verbose=False, estimate=False)
    c = train(fast(), data=DATA, verbose=False, estimate=False)
    d = train(fast(), data=DATA, verbose=False, estimate=False)  # the same cell run again
    assert len({a.path, b.path, c.path, d.path}) == 4 and all((r.path / "model").is_dir() for r in (a, b, c, d))
    assert [r.name for r in list_runs()] == [a.name, b.name, c.name, d.name]
    assert c.name.startswith("full-lr1e-03-constant-2steps-") and d.config == c.config
    e = train(fast(), data=DATA, verbose=False, estimate=False, overwrite=True)  # replaces the newest of that name
    assert e.path == d.path and [r.name for r in list_runs()] == [a.name, b.name, c.name, e.name]


def test_a_named_run_gets_a_suffix_when_taken_and_overwrite_replaces_it(runs_in_tmp):
    first = train(fast(run_name="mine"), data=DATA, verbose=False, estimate=False)
    second = train(fast(run_name="mine"), data=DATA, verbose=False, estimate=False)
    assert (first.name, second.name) == ("mine", "mine-2")
    (first.path / "eval").mkdir()  # a report made later: goes with the run it belongs to
    again = train(fast(run_name="mine", learning_rate=1e-2), data=DATA, verbose=False, estimate=False, overwrite=True)
    assert again.name == "mine" and not (again.path / "eval").exists()
    assert load_run("mine").config.learning_rate == 1e-2 and len(list_runs()) == 2


def test_default_names_hold_the_start_time_and_explicit_folders_are_exact(runs_in_tmp, tmp_path):
    config = fast(lora=True)
    path, replace = plan_run_folder(config, now=datetime(2026, 11, 30, 14, 25, 1))
    assert (path, replace) == (runs_in_tmp / "lora-r16-lr1e-03-constant-2steps-1130-142501", False)
    assert plan_run_folder(fast(output_dir=str(tmp_path / "x"))) == (tmp_path / "x", False)


def test_runs_are_found_by_name_prefix_or_folder_and_no_pickles_are_kept(runs_in_tmp):
    older = train(fast(run_name="lr-a", save_steps=1), data=DATA, verbose=False, estimate=False)
    newer = train(fast(run_name="lr-b", save_steps=1), data=DATA, verbose=False, estimate=False)
    assert find_run("lr-") == newer.path and find_run("lr-a") == older.path and find_run(older.path) == older.path
    assert load_run("lr").name == "lr-b" and [r.name for r in list_runs("lr-")] == ["lr-a", "lr-b"]
    with pytest.raises(CourseError, match="No run 'nothing'"):
        load_run("nothing")
    assert not list(runs_in_tmp.rglob("training_args.bin"))
    assert (newer.path / "checkpoints" / "checkpoint-2" / "model.safetensors").is_file()


def test_a_damaged_record_is_skipped_with_a_warning_never_a_crash(runs_in_tmp):
    good = train(fast(run_name="good"), data=DATA, verbose=False, estimate=False)
    bad = train(fast(run_name="bad"), data=DATA, verbose=False, estimate=False)
    (bad.path / "run.json").write_text('{"status": "finished",')
    with pytest.warns(RunRecordWarning, match="skipped bad: .*run.json, line 1: not valid JSON"):
        assert [r.name for r in list_runs()] == ["good"]
    with pytest.raises(CourseError, match="run.json, line 1: not valid JSON"):
        load_run("bad")
    (good.path / "train_config.json").write_text('{"learning_rate": 1e-3, "colour": "red"}')
    with pytest.warns(RunRecordWarning, match="skipped good: .*colour"):
        assert list_runs() == []
    done = cli("eval", "--model", "bad", "--data", "kettlebird", runs=runs_in_tmp)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "run.json, line 1" in done.stderr


def test_runs_command_lists_shows_prunes_and_deletes(runs_in_tmp):
    kept = train(fast(run_name="kept", save_steps=1), data=DATA, verbose=False, estimate=False)
    train(fast(run_name="other"), data=DATA, verbose=False, estimate=False)
    listing = cli("runs", runs=runs_in_tmp)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["run", "status", "lr", "steps", "train", "eval", "size"]
    assert [line.split()[:4] for line in lines[1:3]] == [["kept", "finished", "1.0e-03", "2"],
                                                          ["other", "finished", "1.0e-03", "2"]]
    assert lines[3].startswith("2 runs, ")
    shown = cli("runs", "show", "kep", runs=runs_in_tmp)
    assert "Run('kept': finished" in shown.stdout and "checkpoints/:" in shown.stdout
    assert "--save-steps 1" in shown.stdout
    pruned = cli("runs", "prune", runs=runs_in_tmp)
    assert pruned.stdout.splitlines()[0].startswith(f"deleted {kept.path / 'checkpoints'} (")
    assert not (kept.path / "checkpoints").exists() and (kept.path / "model").is_dir()
    refused = cli("runs", "delete", "ke", runs=runs_in_tmp)  # a prefix is not enough to delete
    assert refused.returncode == 2 and kept.path.is_dir()
    gone = cli("runs", "delete", "kept", runs=runs_in_tmp)
    assert gone.returncode == 0 and gone.stdout.startswith(f"deleted {kept.path} (") and not kept.path.exists()
    assert prune_runs() == []


def test_a_stopped_run_continues_with_the_call_its_message_names(runs_in_tmp):
    from transformers import TrainerCallback

    class StopAt1(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            flag.set()

    import threading
    flag = threading.Event()
    stopped = train(fast(max_steps=3), data=DATA, verbose=False, estimate=False, stop=flag, callbacks=[StopAt1()])
    assert stopped.status == "stopped"
    assert stopped.message.endswith(f"train(resume={stopped.name!r}) continues exactly from here.")
    resumed = train(resume=stopped.name, data=DATA, verbose=False)
    assert (resumed.status, resumed.path, resumed.history[-1]["step"]) == ("finished", stopped.path, 3)
    assert json.loads((stopped.path / "run.json").read_text())["started"] == stopped.started


def test_delete_takes_only_what_the_course_wrote_and_never_a_link_or_a_live_run(runs_in_tmp, tmp_path):
    from llmcourse.training.runs import delete_run, made_by_the_course

    done = train(fast(run_name="done"), data=DATA, verbose=False, estimate=False)
    assert made_by_the_course(done.path) and json.loads((done.path / "run.json").read_text())["format"] == "llmcourse-run/1"
    lookalike = runs_in_tmp / "lookalike"  # a folder of someone else's that happens to hold a run.json
    lookalike.mkdir()
    (lookalike / "run.json").write_text('{"status": "finished", "my": "own data"}')
    (lookalike / "train_config.json").write_text("{}")
    link = runs_in_tmp / "link"
    link.symlink_to(done.path)
    with pytest.raises(CourseError, match="not a record the course wrote, so nothing was deleted"):
        delete_run("lookalike")
    with pytest.raises(CourseError, match="is a symbolic link"):
        delete_run(link)
    live = train(fast(run_name="live"), data=DATA, verbose=False, estimate=False)
    live.status = "running"
    live.save()  # as the record reads while this process trains it
    with pytest.raises(CourseError, match=f"live is still training \\(process {os.getpid()}\\).*--force"):
        delete_run("live")
    assert delete_run("live", force=True)[0] == live.path and not live.path.exists()
    assert lookalike.is_dir() and link.is_symlink() and done.path.is_dir()


def test_a_run_whose_process_died_is_listed_as_died_with_what_is_left(runs_in_tmp):
    run = train(fast(run_name="killed", save_steps=1), data=DATA, verbose=False, estimate=False)
    record = json.loads((run.path / "run.json").read_text())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record.update(status="running", pid=int(dead.stdout))  # as a SIGKILL leaves it: "running", its process gone
    (run.path / "run.json").write_text(json.dumps(record))
    (run.path / "checkpoints" / "checkpoint-2" / "optimizer.pt").unlink()  # the newest one was cut off mid-save
    assert load_run("killed").died
    listed = cli("runs", runs=runs_in_tmp)
    assert listed.returncode == 0 and "killed  died" in listed.stdout
    assert ("killed: died at step 2 (its process " in listed.stdout and "resume it from checkpoint-1 with "
            "`python -m llmcourse train --resume killed` (Python: train(resume='killed')); its model/ is whole: "
            f"load_model({str(run.path)!r}) loads the last model it saved." in listed.stdout)
    shutil.rmtree(run.path / "model")
    assert died_line(load_run("killed")).endswith("(Python: train(resume='killed')).")


def test_resume_skips_a_checkpoint_cut_off_mid_save_and_continues_the_history(runs_in_tmp, capsys):
    from llmcourse.training.runs import last_complete_checkpoint

    run = train(fast(run_name="cut", max_steps=3, save_steps=1), data=DATA, verbose=False, estimate=False)
    steps = [r["step"] for r in run.history if r.get("loss") is not None]
    checkpoints = run.path / "checkpoints"
    (checkpoints / "checkpoint-3" / "trainer_state.json").write_text('{"global_step": 3, "log_hist')  # cut off
    assert last_complete_checkpoint(checkpoints, verbose=True) == str(checkpoints / "checkpoint-2")
    assert capsys.readouterr().out == (f"resume: skipping {checkpoints / 'checkpoint-3'} (its trainer_state.json is "
                                       "missing or cut off); trying the one before it\n")
    resumed = train(resume="cut", data=DATA, verbose=False, estimate=False)
    assert resumed.status == "finished" and [r["step"] for r in resumed.history if r.get("loss") is not None] == steps
    # the cut-off one was set aside before the rotation ran, so the rotation kept two complete checkpoints
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-2", "checkpoint-3", "incomplete-checkpoint-3"]
    assert last_complete_checkpoint(checkpoints) == str(checkpoints / "checkpoint-3")


def test_two_runs_started_at_the_same_moment_get_a_folder_each(runs_in_tmp, tmp_path):
    """Twin `train` processes, with one --run-name and with none: each ends in its own folder with its own config."""
    from concurrent.futures import ThreadPoolExecutor

    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"question": r["prompt"], "answer": r["completion"]}) + "\n" for r in ROWS))
    base = ["train", "--model", "tiny-random", "--data", str(data), "--max-steps", "1", "--eval-steps", "0",
            "--no-save-model", "--quiet"]
    rates = ["1e-3", "2e-3", "3e-3", "4e-3"]
    argvs = [[*base, "--learning-rate", lr, *(["--run-name", "same"] if i < 2 else [])] for i, lr in enumerate(rates)]
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda argv: cli(*argv, runs=runs_in_tmp), argvs))
    assert all(d.returncode == 0 for d in done), [d.stderr[-500:] for d in done]
    runs = list_runs()
    assert sorted(r.config.learning_rate for r in runs) == [1e-3, 2e-3, 3e-3, 4e-3]
    assert sorted(r.name for r in runs if r.config.run_name) == ["same", "same-2"]
    assert all(r.status == "finished" for r in runs)


def test_resuming_from_the_last_checkpoint_trains_no_step_past_the_end(runs_in_tmp):
    """A kill during the final save leaves checkpoint-N at max_steps; Trainer alone would take a step N+1."""
    run = train(fast(run_name="ended", max_steps=3, save_steps=3), data=DATA, verbose=False, estimate=False)
    resumed = train(resume=str(run.path / "checkpoints" / "checkpoint-3"), data=DATA, verbose=False, estimate=False)
    assert resumed.status == "finished" and [r["step"] for r in resumed.history] == [r["step"] for r in run.history]
    assert sorted(p.name for p in (run.path / "checkpoints").iterdir()) == ["checkpoint-3"]


def test_a_run_training_now_is_neither_resumed_nor_replaced_and_a_reused_pid_is_not_its_process(runs_in_tmp):
    from llmcourse.training.runs import still_training

    run = train(fast(run_name="busy", save_steps=1), data=DATA, verbose=False, estimate=False)
    record = json.loads((run.path / "run.json").read_text())
    me = {"status": "running", "pid": os.getpid(), "host": socket.gethostname(),
          "pid_started": psutil.Process().create_time()}
    (run.path / "run.json").write_text(json.dumps({**record, **me}))  # as this very process training it
    for kw in ({"resume": "busy"}, {"overwrite": True}):
        with pytest.raises(CourseError, match=r"^busy is training right now \(process \d+\): (resume|replace) it once "):
            train(fast(run_name="busy", save_steps=1), data=DATA, verbose=False, estimate=False, **kw)
    assert still_training(me) and not load_run("busy").died
    assert not still_training({**me, "pid_started": me["pid_started"] - 60})  # a later process got its PID
    assert still_training({**me, "pid": 2**22 + 1, "host": "another-machine"})  # a shared store: cannot tell
    assert load_run(run.path).status == "running"  # and nothing was rewritten
    (run.path / "run.json").write_text(json.dumps({**record, **me, "pid_started": me["pid_started"] - 60}))
    assert load_run("busy").status == "died" and json.loads((run.path / "run.json").read_text())["status"] == "died"


def test_a_model_old_left_by_a_kill_does_not_block_the_next_save(runs_in_tmp):
    run = train(fast(run_name="swap", max_steps=2, save_steps=1), data=DATA, verbose=False, estimate=False)
    (run.path / "model.old").mkdir()
    (run.path / "model.old" / "half.safetensors").write_bytes(b"x")  # a kill in the middle of deleting it
    resumed = train(resume=str(run.path / "checkpoints" / "checkpoint-1"), data=DATA, verbose=False, estimate=False)
    assert resumed.status == "finished" and (run.path / "model").is_dir() and not (run.path / "model.old").exists()
