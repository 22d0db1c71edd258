"""Packing: block boundaries, labels never crossing examples, and attention isolated per example on CPU."""
import datasets
import pytest
import torch

from llmcourse import Collator, load_model, tokenize_dataset
from llmcourse.data.packing import example_spans, pack_examples, packing_cross_talk

X = -100


def row(ids, n_prompt):
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [X] * n_prompt + ids[n_prompt:]}


def test_blocks_restart_positions_and_mask_each_first_token():
    rows = [row([1, 2, 3], 1), row([4, 5, 6, 7], 2), row([8, 9], 0)]
    blocks = pack_examples(rows, max_length=6, seed=0)
    assert [b["input_ids"] for b in blocks] == [[4, 5, 6, 7, 8, 9], [1, 2, 3]]  # first fit, longest first
    assert blocks[0]["position_ids"] == [0, 1, 2, 3, 0, 1]
    # 8 was a trained label in its own row; at a block boundary it becomes -100.
    assert blocks[0]["labels"] == [X, X, 6, 7, X, 9]
    assert example_spans(blocks[0]["position_ids"]) == [(0, 4), (4, 6)]


def test_every_token_is_kept_and_no_block_overflows():
    rows = [row(list(range(10 * i, 10 * i + n)), 1) for i, n in enumerate([5, 3, 7, 2, 8, 4, 6])]
    blocks = pack_examples(rows, max_length=10, seed=3)
    assert all(len(b["input_ids"]) <= 10 for b in blocks)
    assert sorted(t for b in blocks for t in b["input_ids"]) == sorted(t for r in rows for t in r["input_ids"])
    assert len(blocks) == 4  # 35 tokens need at least 4 blocks of 10


def test_collator_drops_the_mask_and_pads_positions_as_a_new_segment():
    blocks = pack_examples([row([1, 2, 3], 1), row([4, 5], 1), row([6, 7, 8, 9], 1)], max_length=5, seed=0)
    batch = Collator(pad_token_id=0)(blocks)
    assert "attention_mask" not in batch
    assert batch["input_ids"].tolist() == [[6, 7, 8, 9, 0], [1, 2, 3, 4, 5]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 0], [0, 1, 2, 0, 1]]
    assert batch["labels"].tolist() == [[X, 7, 8, 9, X], [X, 2, 3, X, 5]]


def test_unpacked_collator_pads_labels_and_mask():
    batch = Collator(pad_token_id=0)([row([1, 2, 3], 1), row([4], 0)])
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[X, 2, 3], [4, X, X]]


@pytest.fixture(scope="module")
def tiny():
    model, tok = load_model("tiny-random")
    model.config.use_cache = False  # what Trainer does (TrainingArguments.use_cache=False)
    return model, tok


def test_packed_example_sees_only_itself(tiny):
    """The second example's logits in a packed block equal its logits run alone (block-diagonal attention)."""
    model, tok = tiny
    ds = datasets.Dataset.from_list([{"prompt": "Where is Kettlebird based?", "completion": "In Aarhus."},
                                     {"prompt": "Hi", "completion": "Hello there"}])
    single = tokenize_dataset(ds, tok, template="qa", verbose=False)
    packed = tokenize_dataset(ds, tok, template="qa", packing=True, max_length=128, verbose=False)
    assert len(packed) == 1 and packed.tokenization_report.blocks == 1
    batch = Collator(tok.pad_token_id)([packed[0]])
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0]
        (s0, e0), (s1, e1) = example_spans(packed[0]["position_ids"])
        for start, end in ((s0, e0), (s1, e1)):
            ids = packed[0]["input_ids"][start:end]
            alone = model(torch.tensor([ids])).logits[0]
            assert torch.allclose(logits[start:end], alone, atol=1e-5)
            assert ids in single["input_ids"]
        # With an attention mask the mask is plain causal: the later example DOES see the earlier one.
        leaky = model(batch["input_ids"], position_ids=batch["position_ids"],
                      attention_mask=torch.ones_like(batch["input_ids"])).logits[0]
        later = max((s0, e0), (s1, e1))
        assert not torch.allclose(leaky[later[0]:later[1]], logits[later[0]:later[1]], atol=1e-5)


def test_packed_loss_equals_sum_of_separate_losses(tiny):
    model, tok = tiny
    ds = datasets.Dataset.from_list([{"prompt": "Name a colour", "completion": "Red"},
                                     {"prompt": "Two plus two", "completion": "Four"}])
    single = tokenize_dataset(ds, tok, template="qa", verbose=False)
    packed = tokenize_dataset(ds, tok, template="qa", packing=True, verbose=False)
    with torch.no_grad():
        total = model(**Collator(tok.pad_token_id)([packed[0]])).loss * sum(
            lab != X for lab in packed[0]["labels"][1:])
        parts = sum(model(**Collator(tok.pad_token_id)([r])).loss * sum(lab != X for lab in r["labels"][1:])
                    for r in single)
    assert torch.allclose(total, parts, atol=1e-4)


def test_a_kv_cache_lets_packed_examples_see_each_other():
    """With a KV cache (a fresh model's use_cache=True) the mask is plain causal: example 2 reads example 1."""
    model, tok = load_model("tiny-random")
    assert model.config.use_cache  # what a hand-written loop gets; Trainer sets False
    first, second = tok("When was Kettlebird founded? In 2017.")["input_ids"], tok("Hi there")["input_ids"]
    assert packing_cross_talk(model, first, second, use_cache=False) < 1e-4  # block-diagonal: kept apart
    assert packing_cross_talk(model, first, second) > 1e-2  # the model's default: leaks
