"""Data-parallel training on CPU: torchrun with 2 processes (gloo), each sees half the rows, both end identical."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = '''
import importlib, json, os, sys
from transformers import TrainerCallback
from llmcourse.training.config import TrainConfig

T = importlib.import_module("llmcourse.training.trainer")  # the module (llmcourse.training.trainer is also the function's name)

seen, make, training = [], T._collator, []
def recording(tokenizer):  # wrap the collator to record which rows this process trains on
    inner = make(tokenizer)
    def collate(rows):
        if training:  # not the cost estimate's probe batch
            seen.extend(list(r["input_ids"]) for r in rows)
        return inner(rows)
    return collate
T._collator = recording

class Started(TrainerCallback):
    def on_train_begin(self, *args, **kw):
        training.append(True)

rows = [{"prompt": f"Where is parcel {i}?", "completion": f"Parcel {i} is in bay {i % 7}."} for i in range(16)]
cfg = TrainConfig.fast(max_steps=-1, num_train_epochs=1, per_device_train_batch_size=2, run_name="ddp", eval_steps=0)
run = T.train(cfg, data={"train": rows}, callbacks=[Started()])
state = {k: v.double().sum().item() for k, v in run.model.state_dict().items()}
json.dump({"seen": seen, "weights": state, "steps": [s for s, _ in run.losses()]},
          open(os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.json"), "w"))
'''


@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None, reason="no torchrun")
def test_two_processes_split_the_data_and_end_with_identical_weights(tmp_path):
    (tmp_path / "worker.py").write_text(WORKER)
    env = {**os.environ, "LLMCOURSE_RUNS": str(tmp_path / "runs"), "OMP_NUM_THREADS": "1"}
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    done = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29517", str(tmp_path / "worker.py"),
                           str(tmp_path)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1))
    seen0, seen1 = {tuple(x) for x in r0["seen"]}, {tuple(x) for x in r1["seen"]}
    assert len(r0["seen"]) == len(r1["seen"]) == 8  # 16 rows, half each
    assert not seen0 & seen1 and len(seen0 | seen1) == 16
    assert r0["steps"] == r1["steps"] == [1, 2, 3, 4]  # 8 rows per process / batch 2
    assert r0["weights"] == r1["weights"]
    # only rank 0 printed and saved: one progress bar, one run folder
    assert done.stdout.count("Cost estimate") + done.stderr.count("Cost estimate") == 1
    assert [p.name for p in Path(tmp_path / "runs").iterdir()] == ["ddp"]
