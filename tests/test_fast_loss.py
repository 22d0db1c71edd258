"""train()'s loss computes logits only where a label is: same loss and same gradients as model(**batch).loss."""
import pytest
import torch

from llmcourse import load_model
from llmcourse.data.tokenization import Collator
from llmcourse.training.trainer import can_skip_unlabelled_logits, labelled_token_loss


def _batch(tokenizer, packed=False):
    rows = []
    for i, (prompt_len, answer_len, pad) in enumerate([(5, 3, 0), (7, 2, 2), (4, 4, 1)]):
        ids = list(range(10 + i, 10 + i + prompt_len + answer_len))
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids),
                     "labels": [-100] * prompt_len + ids[prompt_len:]})
    batch = Collator(tokenizer.pad_token_id)(rows)
    if packed:  # two examples in one row, told apart by position_ids restarting at 0
        n = batch["input_ids"].shape[1]
        batch = {"input_ids": batch["input_ids"][:1].clone(), "labels": batch["labels"][:1].clone(),
                 "position_ids": torch.tensor([list(range(4)) + list(range(n - 4))])}
    return batch


def _grads(model):
    return [p.grad.clone() for p in model.parameters() if p.requires_grad]


@pytest.mark.parametrize("lora", [False, True])
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("num_items", [None, 11])
def test_same_loss_and_gradients_as_the_full_forward(lora, packed, num_items):
    torch.manual_seed(0)
    model, tokenizer = load_model("tiny-random")
    model.config.use_cache = False  # what Trainer does (TrainingArguments.use_cache=False); packed rows need it
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=4, target_modules="all-linear"))
    assert can_skip_unlabelled_logits(model)
    device = next(model.parameters()).device  # load_model puts it on a GPU where there is one
    batch = {k: v.to(device) for k, v in _batch(tokenizer, packed).items()}
    extra = {} if num_items is None else {"num_items_in_batch": torch.tensor(num_items)}

    reference = model(**batch, **extra).loss
    reference.backward()
    expected = _grads(model)
    model.zero_grad()
    loss = labelled_token_loss(model, batch, extra.get("num_items_in_batch"))
    loss.backward()

    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    for got, want in zip(_grads(model), expected):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)  # float sums in another order


def test_models_with_a_scaled_or_capped_head_keep_the_full_forward():
    model, _ = load_model("tiny-random")
    model.config.model_type = "gemma2"  # soft-caps its logits after lm_head
    assert not can_skip_unlabelled_logits(model)
