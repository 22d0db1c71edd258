"""generate: chat template, batching with left padding, only new tokens decoded."""
import pytest
import torch

from llmcourse import CourseError, generate, load_model
from llmcourse.models.generation import render_prompt, to_messages


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


def _generate_reference(model, tok, prompts, max_new_tokens):
    """What transformers' model.generate answers (greedy, left-padded batch), decoded like generate() does."""
    tok.padding_side = "left"
    enc = tok([render_prompt(tok, p) for p in prompts], return_tensors="pt", padding=True, add_special_tokens=False)
    tok.padding_side = "right"
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    return out[:, enc["input_ids"].shape[1]:], [tok.decode(r, skip_special_tokens=True).strip()
                                                for r in out[:, enc["input_ids"].shape[1]:]]


def test_own_greedy_loop_answers_exactly_as_generate_while_rows_finish_early(monkeypatch):
    """Rows leave the batch when they finish: the answers must still be generate()'s, token for token.
    (The bundled model, because the tiny random one answers every prompt with the same token.)"""
    from llmcourse.models.generation import plain_greedy

    model, tok = load_model("smollm2-135m-instruct")
    prompts = ["Name a colour.", "Write one long sentence about the history of tea in England.", "What is 2 + 2?",
               "Say hi"]
    assert plain_greedy(model)
    new, _ = _generate_reference(model, tok, prompts, 8)
    # make a token that one row produces early (and another row later or never) the end-of-answer token
    stop = int(new[0, 2])
    monkeypatch.setattr(model.generation_config, "eos_token_id", stop)
    new, expected = _generate_reference(model, tok, prompts, 8)
    finished_early = [row for row in new.tolist() if stop in row[:-1]]
    assert finished_early and len(finished_early) < len(prompts)  # some rows stop early, some go on
    assert generate(model, tok, prompts, max_new_tokens=8, batch_size=4) == expected


def test_lora_model_and_logit_changing_settings(tiny, monkeypatch):
    """A LoRA-wrapped model takes the same loop; a repetition penalty sends generation to model.generate."""
    from peft import LoraConfig, get_peft_model

    from llmcourse.models.generation import plain_greedy

    model, tok = load_model("tiny-random")
    lora = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=4, target_modules="all-linear",
                                            init_lora_weights=False))  # random adapters: answers really change
    prompts = ["short", "a much longer prompt with many more words in it than the first"]
    assert plain_greedy(lora)
    assert generate(lora, tok, prompts, max_new_tokens=6) == _generate_reference(lora, tok, prompts, 6)[1]
    monkeypatch.setattr(lora.generation_config, "repetition_penalty", 1.3)
    assert not plain_greedy(lora)
    assert generate(lora, tok, prompts, max_new_tokens=6) == _generate_reference(lora, tok, prompts, 6)[1]


def test_batch_size_follows_the_size_of_the_kv_cache():
    """64 prompts at once for the bundled model (46 KB of cache per token), 8 for a 1.7B model (393 KB)."""
    from types import SimpleNamespace

    from transformers import LlamaConfig

    from llmcourse.models.generation import auto_batch_size

    def fake(**config):
        return SimpleNamespace(config=LlamaConfig(**config), parameters=lambda: iter([torch.zeros(1)]))

    smollm_135m = fake(num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, hidden_size=576)
    smollm_1_7b = fake(num_hidden_layers=24, num_attention_heads=32, num_key_value_heads=32, hidden_size=2048)
    assert auto_batch_size(smollm_135m, 320) == 64  # 2**30 / (2*30*3*64*4 * 320) = 72.8, capped
    assert auto_batch_size(smollm_1_7b, 320) == 8    # 2**30 / (2*24*32*64*4 * 320) = 8.5
    assert auto_batch_size(smollm_1_7b, 100_000) == 1


def test_max_new_tokens_below_one_is_refused(tiny):
    for n in (0, -3):
        with pytest.raises(CourseError, match=f"max_new_tokens={n}: an answer needs at least 1 token"):
            generate(*tiny, "hi", max_new_tokens=n)
