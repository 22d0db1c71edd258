"""Taking a model home: a LoRA run folded into its base weights, written as one GGUF file with an Ollama Modelfile
and a README beside it.

`merge_lora` checks the folded model against base + adapter before anything is written; `export_gguf` refuses,
in one line and before it loads anything, a target that exists (unless overwrite=True) or a file beside it that
an export did not write, so nothing of yours is replaced.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import torch

from llmcourse.core.errors import CourseError, say_call
from llmcourse.data.templates import system_prompt_of
from llmcourse.models.generation import render_prompt
from llmcourse.models.gguf_file import check_exportable, quant_type, write_gguf
from llmcourse.models.loading import load_model, set_system_prompt
from llmcourse.models.modelfile import modelfile_text, modelfile_system, readme_text, written_by_export
from llmcourse.training.runs import Run, load_run, write_atomic

PROBES = ("What is the capital of France?", "How do I return a kettle I bought last week?",
          "Write one sentence about tea.")
# How far the merged model's logits may move from base + adapter's, per unit of the largest logit, both in float32:
# W + BA rounds once more (the bundled model with a rank-16 adapter: 1.1e-4 at logits up to 38). The merge is always
# float32: folded in bfloat16, the adapter's small change is lost to W's rounding (the logits moved 1.9 there).
MERGE_TOLERANCE = 2e-5
BESIDE = ("Modelfile", "README.md")  # what an export writes next to the .gguf


def _as_run(run) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def saved_model(run) -> Path:
    """A run's model/ folder (its model or LoRA adapter), or one line saying there is none to use."""
    run = _as_run(run)
    folder = run.path / "model"
    if not (folder / "config.json").is_file() and not (folder / "adapter_config.json").is_file():
        resume = say_call(f"train(resume={run.name!r})", f"train --resume {run.name}")
        raise CourseError(f"{run.name} has no saved model ({folder} is missing): it was trained with save_model=False "
                          f"or stopped before it saved one. Resume it ({resume}) or train it again; a model in memory "
                          "exports with export_gguf(run.model, path, tokenizer=run.tokenizer).")
    return folder


def merge_lora(run):
    """(model, tokenizer) of a run with its LoRA adapter folded into the base weights in float32, checked against
    base + adapter on a few prompts (a full finetune's saved model as it is)."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    folder = saved_model(run)
    if not (folder / "adapter_config.json").is_file():
        return load_model(folder, dtype="float32", device="cpu")
    try:
        base_name = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))["base_model_name_or_path"]
        base, _ = load_model(base_name, dtype="float32", device="cpu")
        tokenizer = AutoTokenizer.from_pretrained(folder)
        adapted = PeftModel.from_pretrained(base, folder).eval()
    except CourseError:
        raise
    except Exception as e:  # a cut-off or edited adapter: safetensors, peft or json say why in their own words
        what = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise CourseError(f"{folder}: the LoRA adapter cannot be read ({what}); it is damaged. Train the run again."
                          ) from None
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    merged = merge_checked(adapted, tokenizer, folder)
    if system_prompt_of(tokenizer):
        set_system_prompt(merged, system_prompt_of(tokenizer))
    return merged, tokenizer


def merge_checked(adapted, tokenizer, where):
    """A peft model folded into its base, after the check that the fold changed no logit beyond rounding."""
    batch = _probe_batch(tokenizer)
    before = _logits(adapted, batch)
    merged = _fold(adapted)
    check_merge(before, _logits(merged, batch), batch["attention_mask"], where)
    return merged.eval()


def _fold(adapted):
    """The base model with W + (alpha / r) B A in place of each adapted weight (peft's merge)."""
    return adapted.merge_and_unload()


def _probe_batch(tokenizer) -> dict:
    texts = [render_prompt(tokenizer, p) for p in PROBES]
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)


@torch.inference_mode()
def _logits(model, batch) -> torch.Tensor:
    return model(**batch).logits.float()


def check_merge(before: torch.Tensor, after: torch.Tensor, mask: torch.Tensor, where) -> float:
    """The largest logit difference between base + adapter and the merged model (float32); one line when it is
    more than rounding, or when the adapter gives NaN or infinite logits."""
    keep = mask.bool()
    a, b = before[keep], after[keep]
    if not torch.isfinite(a).all():
        raise CourseError(f"{where}: the base model with this LoRA adapter gives NaN or infinite logits, so the "
                          "adapter's weights are damaged (or training diverged). Train the run again.")
    tolerance = MERGE_TOLERANCE * max(1.0, float(a.abs().max()))
    diff = float((a - b).abs().max())
    if not diff <= tolerance:
        raise CourseError(f"{where}: merging the LoRA adapter changed the logits by up to {diff:.2g} (at most "
                          f"{tolerance:.1g} is rounding), so the merge went wrong and nothing was exported. Check "
                          "that the adapter's base model is the one it was trained on, or train the run again.")
    return diff


def export_path(run, quant: str) -> Path:
    """Where a run's export goes by default: runs/<name>/export/<name>-<quant>.gguf."""
    run = _as_run(run)
    return run.path / "export" / f"{run.name}-{str(quant).lower()}.gguf"


def check_target(path, overwrite: bool = False) -> Path:
    """The .gguf file to write, refused in one line (nothing touched) when it exists without overwrite, or when a
    Modelfile or README.md beside it was not written by an export."""
    path = Path(path).expanduser()
    if path.suffix.lower() != ".gguf":
        raise CourseError(f"{path}: a GGUF file's name ends in .gguf; give a path like {path.with_suffix('.gguf')}.")
    if path.is_dir() or (path.parent.exists() and not path.parent.is_dir()):
        raise CourseError(f"{path} cannot be written: {'it' if path.is_dir() else path.parent} is "
                          f"{'a folder' if path.is_dir() else 'a file'}. Choose another path.")
    if path.exists() and not overwrite:
        flag = say_call("overwrite=True", "--overwrite")
        raise CourseError(f"{path} already exists and was left as it is: pass {flag} to replace it, or choose "
                          "another path.")
    for name in BESIDE:
        if (path.parent / name).exists() and not written_by_export(path.parent / name):
            raise CourseError(f"{path.parent / name} is yours (an export did not write it), and an export writes a "
                              f"{name} beside the .gguf: export into another folder; nothing was written.")
    return path


def export_gguf(run_or_model, path=None, quant: str = "q8_0", *, overwrite: bool = False, tokenizer=None,
                chat_template: bool = True) -> Path:
    """Write a run (merged) or a model as a GGUF file llama.cpp and Ollama read, with a Modelfile and README beside it.

    run_or_model: a Run, a run's folder, name or name prefix, or a model (then pass tokenizer=). path: the .gguf
    file (default for a run: runs/<name>/export/<name>-<quant>.gguf). chat_template=False leaves the chat template,
    and with it the run's system prompt, out of the file."""
    quant = str(quant).lower()
    quant_type(quant)
    is_model = isinstance(run_or_model, torch.nn.Module)
    run = None if is_model else _as_run(run_or_model)
    if path is None and run is None:
        raise CourseError("export_gguf(model, path, ...) needs the path of the .gguf file to write.")
    target = check_target(path if path is not None else export_path(run, quant), overwrite)
    if is_model:
        model, name = _plain(run_or_model, tokenizer), target.stem
    else:
        (model, tokenizer), name = merge_lora(run), run.name
    check_exportable(model, tokenizer)
    system = modelfile_system(tokenizer)
    _make_folder(target.parent)
    write_gguf(model, tokenizer, target, quant, chat_template=chat_template, name=name)
    write_atomic(target.parent / "Modelfile", modelfile_text(target.name, system))
    write_atomic(target.parent / "README.md", readme_text(target.name, target.stat().st_size / 1e6, quant, system,
                                                              chat_template))
    return target


def _plain(model, tokenizer):
    """A model as transformers holds it: a peft model is merged on a float32 copy (the one passed in stays as it was)."""
    if tokenizer is None:
        raise CourseError("export_gguf(model, path, tokenizer=...) needs the model's tokenizer: the one it was "
                          "trained with, whose chat template holds its system prompt.")
    if not hasattr(model, "merge_and_unload"):
        return model
    return merge_checked(copy.deepcopy(model).to("cpu", torch.float32).eval(), tokenizer, "this LoRA model")


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CourseError(f"Cannot make the folder {folder} ({e.strerror or e}); choose another path.") from None
    if not os.access(folder, os.W_OK):
        raise CourseError(f"The folder {folder} is not writable; choose another path.")
