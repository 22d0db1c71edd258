"""Generating answers: chat template when the tokenizer has one, batched with left padding."""
from __future__ import annotations

import torch


def to_messages(prompt) -> list[dict]:
    """A plain string becomes one user turn; a list of {"role", "content"} turns is kept as is."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return list(prompt)


def render_prompt(tokenizer, prompt, chat: bool | None = None) -> str:
    """The exact text the model sees before it starts answering."""
    if chat is None:
        chat = getattr(tokenizer, "chat_template", None) is not None
    if chat:
        return tokenizer.apply_chat_template(to_messages(prompt), tokenize=False, add_generation_prompt=True)
    if not isinstance(prompt, str):
        raise TypeError("A list of messages needs a tokenizer with a chat template; pass a plain string instead.")
    return prompt


@torch.inference_mode()
def generate(model, tokenizer, prompt_or_messages, max_new_tokens: int = 64, *, chat: bool | None = None,
             batch_size: int = 16, do_sample: bool = False, **kw):
    """Answer one prompt (str or chat messages) -> str, or a list of prompts -> list[str] (batched).

    Only the newly generated tokens are decoded (never the prompt), so long prompts never come back empty.
    Greedy by default, so answers are reproducible.
    """
    single = isinstance(prompt_or_messages, str) or (
        isinstance(prompt_or_messages, list) and prompt_or_messages and isinstance(prompt_or_messages[0], dict))
    prompts = [prompt_or_messages] if single else list(prompt_or_messages)
    texts = [render_prompt(tokenizer, p, chat) for p in prompts]
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
