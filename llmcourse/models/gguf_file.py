"""A model as one GGUF file that llama.cpp (and Ollama, LM Studio) read as it is: llama.cpp's tensor names and
layout, the bundled SmolLM2 tokenizer copied field by field, and the run's own chat template.

Checked against the bundled SmolLM2 GGUF: the same tensor names and shapes, q/k rows in llama.cpp's rotary order,
no `output.weight` when the embeddings are tied, and no BOS added in front of a prompt (`add_bos_token` false).
"""
from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

import numpy as np
import torch

from llmcourse.core.errors import CourseError
from llmcourse.models.loading import base_model, find_bundled_gguf

QUANTS = ("f16", "q8_0", "q4_0")
FAMILIES = {"llama": "LlamaForCausalLM"}  # config.model_type -> the class whose tensors llama.cpp reads as 'llama'
TOKENIZER_FIELDS = ("model", "pre", "tokens", "token_type", "merges", "bos_token_id", "eos_token_id",
                    "unknown_token_id", "padding_token_id", "add_bos_token", "add_space_prefix")


def quant_type(quant: str):
    """The GGML type of a quant name (f16, q8_0, q4_0), or one line naming the ones there are."""
    import gguf

    name = str(quant).lower()
    if name not in QUANTS:
        raise CourseError(f"quant={quant!r} is not one the export writes: pick f16 (exact, biggest), q8_0 (about half "
                          "of f16, answers nearly the same) or q4_0 (about a quarter, answers drift more).")
    return getattr(gguf.GGMLQuantizationType, name.upper())


def check_exportable(model, tokenizer) -> None:
    """Refuse, in one line, a model llama.cpp would not read as written here: another family, biases, rope scaling,
    or a tokenizer that is not the bundled SmolLM2 one."""
    model = base_model(model)
    config, kind = model.config, getattr(model.config, "model_type", None)
    if FAMILIES.get(kind) != type(model).__name__:
        raise CourseError(f"export_gguf writes Llama-family models only (LlamaForCausalLM: SmolLM2, TinyLlama, "
                          f"Llama 2), and this one is {type(model).__name__} (model_type {kind!r}). Finetune a "
                          "Llama-family model, such as the bundled SmolLM2, to export it.")
    rope = (getattr(config, "rope_parameters", None) or {}).get("rope_type", "default")
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False) or rope != "default":
        raise CourseError(f"This Llama model has {'biases' if rope == 'default' else f'{rope!r} rope scaling'}, "
                          "which the GGUF export does not write; export a model without them (such as SmolLM2).")
    tokens = bundled_tokenizer()["tokens"][0]
    vocab = tokenizer.get_vocab()
    if len(vocab) != len(tokens) or any(vocab.get(t) != i for i, t in enumerate(tokens)):
        raise CourseError("The GGUF export writes the bundled SmolLM2 tokenizer, and this tokenizer has another "
                          f"vocabulary ({len(vocab)} tokens): export a model of the SmolLM2 family.")
    rows = model.get_input_embeddings().weight.shape[0]
    if rows != len(tokens):
        raise CourseError(f"The model's embedding has {rows} rows and its tokenizer {len(tokens)} tokens; llama.cpp "
                          "needs one row per token. Export the model with the tokenizer it was trained with.")


@functools.lru_cache(maxsize=1)
def bundled_reader():
    """The bundled GGUF file, parsed once per process (5-10 s on two cores: 49k tokens and merges)."""
    import gguf

    return gguf.GGUFReader(find_bundled_gguf())


@functools.lru_cache(maxsize=1)
def bundled_tokenizer() -> dict:
    """The bundled GGUF's `tokenizer.ggml.*` fields: {field: (value, value type, item type or None)}."""
    import gguf

    reader = bundled_reader()
    out = {}
    for name in TOKENIZER_FIELDS:
        field = reader.fields[f"tokenizer.ggml.{name}"]
        sub = field.types[1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
        out[name] = (field.contents(), field.types[0], sub)
    return out


def rotary_rows(weight: np.ndarray, heads: int) -> np.ndarray:
    """q or k rows from HF's rotary order (first halves, then second halves of each head) to llama.cpp's (pairs):
    llama.cpp's converter permutes q with the head count and k with the key-value head count, as here."""
    half = weight.shape[0] // heads // 2
    return weight.reshape(heads, 2, half, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _encode(name: str, data: np.ndarray, qtype, ggml) -> tuple[np.ndarray, object]:
    """(bytes or floats, GGML type) of one tensor: norms stay f32; rows that do not fill a block fall back to f16;
    the embedding stays q8_0 under q4_0, as in the bundled file (it is the output layer too)."""
    import gguf

    if data.ndim == 1:
        return data.astype(np.float32), ggml.F32
    if qtype == ggml.Q4_0 and name == "token_embd.weight":
        qtype = ggml.Q8_0
    if qtype == ggml.F16 or data.shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0]:
        return data.astype(np.float16), ggml.F16
    return gguf.quants.quantize(data, qtype), qtype


def gguf_tensors(model, quant: str):
    """(llama.cpp name, data, GGML type) of every weight, q/k rows permuted for rotary, a tied output left out."""
    import gguf

    model, ggml, qtype = base_model(model), gguf.GGMLQuantizationType, quant_type(quant)
    config = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    state = model.state_dict()
    tied = "lm_head.weight" in state and torch.equal(state["lm_head.weight"], state["model.embed_tokens.weight"])
    for hf_name, tensor in state.items():
        if hf_name == "lm_head.weight" and tied:  # llama.cpp uses token_embd as the output layer when output is absent
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise CourseError(f"The model's weight {hf_name!r} has no place in llama.cpp's Llama layout, so the GGUF "
                              "export cannot write it. Export a plain Llama-family model (such as SmolLM2).")
        data = tensor.detach().to("cpu", torch.float32).numpy()
        if name.endswith(".attn_q.weight"):
            data = rotary_rows(data, config.num_attention_heads)
        elif name.endswith(".attn_k.weight"):
            data = rotary_rows(data, config.num_key_value_heads)
        yield (name, *_encode(name, data, qtype, ggml))


def _add_metadata(writer, model, quant: str, name: str) -> None:
    import gguf

    config = base_model(model).config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    theta = (getattr(config, "rope_parameters", None) or {}).get("rope_theta") or getattr(config, "rope_theta", 1e4)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.num_key_value_heads or heads)
    writer.add_rope_freq_base(float(theta))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(base_model(model).get_input_embeddings().weight.shape[0])
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config.hidden_size // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_file_type(getattr(gguf.LlamaFileType, f"MOSTLY_{quant.upper()}"))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _add_tokenizer(writer, chat_template: str | None) -> None:
    for field, (value, kind, sub) in bundled_tokenizer().items():
        writer.add_key_value(f"tokenizer.ggml.{field}", value, kind, sub_type=sub)
    if chat_template:
        writer.add_chat_template(chat_template)


def write_gguf(model, tokenizer, path, quant: str = "q8_0", *, chat_template: bool = True, name: str = "model") -> Path:
    """Write `model` to `path` as GGUF, whole or not at all (a temporary file beside it, then a rename)."""
    import gguf

    path, quant = Path(path), str(quant).lower()
    quant_type(quant)
    check_exportable(model, tokenizer)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    writer = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    try:
        _add_metadata(writer, model, quant, name)
        _add_tokenizer(writer, tokenizer.chat_template if chat_template else None)
        for tensor_name, data, kind in gguf_tensors(model, quant):
            writer.add_tensor(tensor_name, data, raw_dtype=kind)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:  # a full disk, no permission: the temporary file goes, nothing else was touched
        raise CourseError(f"Could not write {path} ({e.strerror or e}); nothing was written. Free some space or "
                          "choose another folder.") from None
    finally:
        writer.close()
        tmp.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def _parsed_once():
    """transformers parses a GGUF file three times (tokenizer, config, weights), each 5-10 s on two cores for
    SmolLM2's 49k tokens and merges: inside this block, the three share one parse of each file."""
    import gguf

    original, parsed = gguf.GGUFReader, {}

    def reader(path, *args, **kw):
        key = (os.path.realpath(path), args, tuple(sorted(kw.items())))
        if key not in parsed:
            parsed[key] = original(path, *args, **kw)
        return parsed[key]

    gguf.GGUFReader = reader  # transformers imports it from gguf at each call
    try:
        yield
    finally:
        gguf.GGUFReader = original


def load_gguf(path, dtype=torch.float32):
    """(model, tokenizer) read back from a GGUF file by transformers, as another program would get them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = Path(path)
    hf_logging.disable_progress_bar()
    try:
        with _parsed_once():
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
    finally:
        hf_logging.enable_progress_bar()
    return model.eval(), tokenizer
