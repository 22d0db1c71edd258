"""generate: chat template, batching with left padding, only new tokens decoded."""
import pytest
import torch

from llmcourse import generate, load_model
from llmcourse.generation import render_prompt, to_messages


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-random")


def test_string_becomes_one_user_turn():
    assert to_messages("hi") == [{"role": "user", "content": "hi"}]


def test_render_prompt_uses_chat_template(tiny):
    _, tok = tiny
    text = render_prompt(tok, "Where is Kettlebird based?")
    assert text.endswith("<|im_start|>user\nWhere is Kettlebird based?<|im_end|>\n<|im_start|>assistant\n")
    assert render_prompt(tok, "raw text", chat=False) == "raw text"


def test_batch_equals_one_by_one(tiny):
    """Left padding must not change greedy answers: batched == unbatched, in the input order."""
    model, tok = tiny
    prompts = ["short", "a much longer prompt with many more words in it than the first", "mid length one"]
    one_by_one = [generate(model, tok, p, max_new_tokens=6) for p in prompts]
    batched = generate(model, tok, prompts, max_new_tokens=6, batch_size=3)
    assert batched == one_by_one
    assert tok.padding_side == "right"  # restored


def test_long_prompt_still_gets_an_answer(tiny):
    """The original course cut max_length including the prompt, so long prompts returned nothing."""
    model, tok = tiny
    ids = tok.apply_chat_template(to_messages("word " * 400), add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    expected = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()
    assert generate(model, tok, "word " * 400, max_new_tokens=5) == expected
