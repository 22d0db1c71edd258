"""The training loss, computed the cheap way: logits only where a label is, 128 rows at a time.

A causal LM's loss projects each position's hidden state onto the whole vocabulary (~49k tokens for the
bundled model), takes a softmax there and reads off the probability of the next token. With answer-only
masking most positions are prompt (label -100) and need no logits at all. And the logits of the positions
that do count are big: 500 answer tokens x 49k x 4 bytes is 100 MB, and autograd keeps that tensor, its
log-softmax and their gradients alive at once. Here each chunk's logits are made, turned into that chunk's
loss and its gradients, and dropped before the next chunk: the same loss and gradients (tests check both),
less memory at the peak (about 0.1 GB for full finetuning in the benchmark; more with longer answers).
"""
from __future__ import annotations

import torch

from llmcourse.data.packing import IGNORE
from llmcourse.models.loading import base_model

CHUNK_ROWS = 128  # positions per chunk: 128 x 49k vocabulary x 4 bytes = 25 MB of logits at a time

# decoder-only families whose logits are exactly lm_head(last hidden state): no scaling or soft-capping after it
_PLAIN_HEAD_TYPES = {"llama", "mistral", "qwen2", "qwen3", "smollm3", "phi3"}


def can_skip_unlabelled_logits(model) -> bool:
    """True when labelled_token_loss gives exactly model(**batch).loss for this model."""
    base = base_model(model)
    return (getattr(base.config, "model_type", None) in _PLAIN_HEAD_TYPES and hasattr(base, "get_decoder")
            and base.get_output_embeddings() is not None)


def labelled_token_loss(model, inputs: dict, num_items_in_batch=None) -> torch.Tensor:
    """The causal-LM loss of model(**inputs).loss, computing logits only at positions that have a label.

    On the bundled model on a CPU this is only a few percent faster than the plain forward (the 30 decoder
    layers' matrix products dominate); what it saves is memory.
    """
    base = base_model(model)
    # use_cache=False: a KV cache is not needed here and would hide where packed rows' examples meet
    hidden = base.get_decoder()(**{k: inputs[k] for k in ("input_ids", "attention_mask", "position_ids")
                                   if k in inputs}, use_cache=False).last_hidden_state
    targets = inputs["labels"][:, 1:]  # position i predicts token i + 1
    keep = targets != IGNORE
    head = base.get_output_embeddings()
    if type(head) is torch.nn.Linear and head.bias is None:  # a LoRA-wrapped or biased head takes the plain way
        loss = linear_cross_entropy(hidden[:, :-1][keep], head.weight, targets[keep])
    else:
        loss = torch.nn.functional.cross_entropy(head(hidden[:, :-1][keep]).float(), targets[keep], reduction="sum")
    count = keep.sum() if num_items_in_batch is None else num_items_in_batch
    return loss / (count.to(loss.device) if torch.is_tensor(count) else count)


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         chunk: int = CHUNK_ROWS) -> torch.Tensor:
    """sum over rows of cross_entropy(hidden @ weight.T, targets), never holding more than `chunk` rows of logits.

    hidden: (rows, hidden size); weight: (vocabulary, hidden size), e.g. lm_head.weight; targets: (rows,).
    Under autocast the projection runs in the autocast dtype and the softmax in float32, as in the model.
    """
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _LinearCrossEntropy.apply(hidden, weight, targets, chunk)
    total = torch.zeros((), device=hidden.device)
    for start in range(0, hidden.shape[0], chunk):
        logits = (hidden[start:start + chunk] @ weight.T).float()
        total = total + torch.nn.functional.cross_entropy(logits, targets[start:start + chunk], reduction="sum")
    return total


class _LinearCrossEntropy(torch.autograd.Function):
    """The forward pass also computes the gradients, chunk by chunk (d loss / d logits = softmax - one-hot),
    so no logits are kept for the backward pass, which only scales the stored gradients."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk):
        total = torch.zeros((), device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if hidden.requires_grad else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if weight.requires_grad else None
        for start in range(0, hidden.shape[0], chunk):
            h, t = hidden[start:start + chunk], targets[start:start + chunk]
            logits = (h @ weight.T).float()
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
            d_logits = logits.sub_(lse[:, None]).exp_()  # softmax, in place
            d_logits[torch.arange(len(t), device=t.device), t] -= 1
            if grad_hidden is not None:
                grad_hidden[start:start + chunk] = d_logits @ weight
            if grad_weight is not None:
                grad_weight += d_logits.T @ h
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx, grad_total):
        grad_hidden, grad_weight = ctx.saved_tensors
        return (None if grad_hidden is None else grad_hidden * grad_total,
                None if grad_weight is None else (grad_weight * grad_total).to(ctx.weight_dtype), None, None)
