"""Generating answers: chat template when the tokenizer has one, batched with left padding.

Greedy answers (the default) come from a small decoding loop of our own rather than model.generate: it gives
the same tokens, but drops each row from the batch as soon as that answer is finished, so a batch no longer
computes 16 rows until its longest answer ends. Sampling and any extra generate() option go to model.generate.
"""
from __future__ import annotations

import inspect

import torch

from llmcourse.core.errors import CourseError
from llmcourse.models.loading import base_model, system_prompt

MAX_BATCH = 64  # on 2 CPU cores 100 questions take 69 s at batch 16, 48 s at 32, 38 s at 64 (bundled model)
CACHE_BUDGET = 2**30  # bytes of KV cache a batch may fill; bigger models get smaller batches


def auto_batch_size(model, tokens_per_row: int) -> int:
    """How many prompts to answer together: as many as keep the KV cache under CACHE_BUDGET, at most MAX_BATCH.
    The bundled 135M model (46 KB of cache per token) gets 64; a 1.7B one (393 KB per token) gets 8."""
    base = base_model(model)
    c = base.config.get_text_config() if hasattr(base.config, "get_text_config") else base.config
    heads = getattr(c, "num_attention_heads", None)
    head_dim = getattr(c, "head_dim", None) or (c.hidden_size // heads if heads else None)
    layers, kv_heads = getattr(c, "num_hidden_layers", None), getattr(c, "num_key_value_heads", None) or heads
    if not (layers and kv_heads and head_dim):
        return 16
    per_token = 2 * layers * kv_heads * head_dim * next(model.parameters()).element_size()
    return max(1, min(MAX_BATCH, CACHE_BUDGET // (per_token * tokens_per_row)))


def to_messages(prompt) -> list[dict]:
    """A plain string becomes one user turn; a list of {"role", "content"} turns is kept as is."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return list(prompt)


def render_prompt(tokenizer, prompt, chat: bool | None = None, system: str | None = None) -> str:
    """The exact text the model sees before it starts answering.

    system: the system turn for a conversation that has none (else the chat template's own default applies)."""
    if chat is None:
        chat = getattr(tokenizer, "chat_template", None) is not None
    if chat:
        messages = to_messages(prompt)
        if system and (not messages or messages[0]["role"] != "system"):
            messages = [{"role": "system", "content": system}, *messages]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if not isinstance(prompt, str):
        raise TypeError("A list of messages needs a tokenizer with a chat template; pass a plain string instead.")
    return prompt


@torch.inference_mode()
def generate(model, tokenizer, prompt_or_messages, max_new_tokens: int = 64, *, chat: bool | None = None,
             batch_size: int | None = None, do_sample: bool = False, **kw):
    """Answer one prompt (str or chat messages) -> str, or a list of prompts -> list[str] (batched).

    Only the newly generated tokens are decoded (never the prompt), so long prompts never come back empty.
    Greedy by default, so answers are reproducible. batch_size: prompts per batch; None picks it from the
    model's size (auto_batch_size: 64 for the bundled model). A model trained by llmcourse gets the system turn
    it was trained with (TrainConfig.system_prompt) whatever the tokenizer; a system turn of your own wins.
    """
    if max_new_tokens < 1:
        raise CourseError(f"max_new_tokens={max_new_tokens}: an answer needs at least 1 token (CLI: --max-new-tokens).")
    single = isinstance(prompt_or_messages, str) or (
        isinstance(prompt_or_messages, list) and prompt_or_messages and isinstance(prompt_or_messages[0], dict))
    prompts = [prompt_or_messages] if single else list(prompt_or_messages)
    texts = [render_prompt(tokenizer, p, chat, system_prompt(model)) for p in prompts]
    batch_size = batch_size or auto_batch_size(model, 256 + max_new_tokens)
    device = next(model.parameters()).device
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
    was_training = model.training
    model.eval()
    answers: list[str] = []
    try:
        # Longest prompts first so each batch pads little; restore the order afterwards.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: dict[int, str] = {}
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(device)
            if not do_sample and not kw and plain_greedy(model):
                new = greedy_decode(model, enc["input_ids"], enc["attention_mask"], max_new_tokens,
                                    stop_ids(model, tokenizer))
            else:
                gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=do_sample,
                                     pad_token_id=tokenizer.pad_token_id, **kw)
                new = gen[:, enc["input_ids"].shape[1]:]
            for i, row in zip(idx, new):
                out[i] = tokenizer.decode(row, skip_special_tokens=True).strip()
        answers = [out[i] for i in range(len(texts))]
    finally:
        tokenizer.padding_side = old_side
        if was_training:
            model.train()
    return answers[0] if single else answers


def compare_system_prompts(model, tokenizer, questions: list[str], max_new_tokens: int = 48):
    """A table of the model's answers under the system turn it was trained with and under the chat template's
    own default (SmolLM2: "You are a helpful AI assistant named SmolLM..."): what changes when the two differ."""
    import pandas as pd

    from llmcourse.data.templates import default_system_prompt, system_prompt_of

    trained = system_prompt(model) or system_prompt_of(tokenizer)
    if not trained:
        raise CourseError("This model was not trained with a system prompt of its own (TrainConfig.system_prompt); "
                          "there are no two prompts to compare.")
    default = default_system_prompt(tokenizer, original=True) or ""
    table = {"question": list(questions)}
    for name, system in (("trained system prompt", trained), ("model's default", default)):
        table[name] = generate(model, tokenizer, [[{"role": "system", "content": system}, {"role": "user", "content": q}]
                                                  for q in questions], max_new_tokens=max_new_tokens)
    return pd.DataFrame(table)


def stop_ids(model, tokenizer) -> list[int]:
    """The tokens that end an answer: the model's generation config's end-of-sequence token(s), as generate uses."""
    eos = model.generation_config.eos_token_id
    eos = tokenizer.eos_token_id if eos is None else eos
    return [eos] if isinstance(eos, int) else list(eos or [])


# generation_config fields that make generate() change the logits; with any of them set, generate() is used
_LOGIT_CHANGERS = {"repetition_penalty": (None, 1.0), "no_repeat_ngram_size": (None, 0), "bad_words_ids": (None,),
                   "suppress_tokens": (None,), "begin_suppress_tokens": (None,), "forced_bos_token_id": (None,),
                   "forced_eos_token_id": (None,), "min_new_tokens": (None, 0), "min_length": (None, 0),
                   "sequence_bias": (None,), "encoder_repetition_penalty": (None, 1.0)}


def plain_greedy(model) -> bool:
    """True when greedy_decode gives exactly what model.generate(do_sample=False) gives for this model: a
    decoder-only model whose forward takes a cache, position ids and logits_to_keep, no logits processors."""
    base = base_model(model)
    config = model.generation_config
    if getattr(base.config, "is_encoder_decoder", False) or any(
            getattr(config, k, None) not in ok for k, ok in _LOGIT_CHANGERS.items()):
        return False
    params = inspect.signature(base.forward).parameters
    return all(k in params for k in ("past_key_values", "position_ids", "logits_to_keep"))


@torch.inference_mode()
def greedy_decode(model, input_ids, attention_mask, max_new_tokens: int, stop: list[int]) -> list[list[int]]:
    """Greedy answers to a left-padded batch: each row's new tokens up to and including its stop token.

    Rows that have finished leave the batch (and the KV cache) at once; the others go on.
    """
    from transformers import DynamicCache

    base = base_model(model)
    stop_t = torch.tensor(stop, device=input_ids.device)
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # left padding: each row counts from its start
    cache = DynamicCache(config=base.config)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, past_key_values=cache,
                use_cache=True, logits_to_keep=1)
    rows = torch.arange(input_ids.shape[0])
    answers: list[list[int]] = [[] for _ in range(input_ids.shape[0])]
    mask, position = attention_mask, positions[:, -1]
    token = out.logits[:, -1].argmax(-1)
    for step in range(max_new_tokens):
        for r, t in zip(rows.tolist(), token.tolist()):
            answers[r].append(t)
        if step == max_new_tokens - 1:
            break
        going = ~torch.isin(token, stop_t)
        if not going.all():
            if not going.any():
                break
            keep = going.nonzero().squeeze(1)
            rows, token, mask, position = rows[keep.cpu()], token[keep], mask[keep], position[keep]
            cache.batch_select_indices(keep)
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
        position = position + 1
        out = model(input_ids=token[:, None], attention_mask=mask, position_ids=position[:, None],
                    past_key_values=cache, use_cache=True)
        token = out.logits[:, -1].argmax(-1)
    return answers
