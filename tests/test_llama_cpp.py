"""The bundled GGUF answers in a real llama.cpp (tests/llama_cpp.py): the checks an exported model must pass too.

The first run installs node-llama-cpp from the npm registry (~15 s, ~85 MB in ~/.cache/llmcourse-tests or
$LLMCOURSE_TEST_CACHE); without node/npm or the registry these tests fail saying so, they never skip.
"""
import shutil

import pytest

from llama_cpp import chat
from llmcourse.models.loading import find_bundled_gguf

pytestmark = [pytest.mark.slow, pytest.mark.llama_cpp]

QUESTION = "What is the capital of France?"
# With this system turn the float model's greedy path never has its top two tokens within 0.18 of each other, so
# llama.cpp's quantized matmuls keep it. Under SmolLM2's default system turn the first token is a near tie
# (The 0.15, L 0.14): transformers says Paris, llama.cpp "L'Étoile, la Marseillaise, ..." until the token limit.
SYSTEM = "Answer in one short sentence."


def test_bundled_gguf_answers_in_llama_cpp_with_its_own_template():
    conversation = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    result = chat(find_bundled_gguf(), [conversation, "Hi"], max_tokens=64)
    answer, default_system = result["answers"]
    model, prompt = result["model"], answer["prompt"]
    assert result["llama_cpp"]["gpu"] is False and result["llama_cpp"]["build_type"] == "prebuilt"
    assert "Paris" in answer["answer"], answer
    # Ends on an end-of-generation token of the vocabulary (<|im_end|> here), not at the token limit.
    assert answer["stop"] == "eog" and answer["token_count"] < 64, answer
    assert answer["stop_token"]["text"] == "<|im_end|>", answer
    # The GGUF's own template, rendered by llama.cpp: the exact ChatML text, and the template's default system turn.
    assert prompt["text"] == (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{QUESTION}<|im_end|>\n"
                              "<|im_start|>assistant\n"), prompt["text"]
    assert default_system["prompt"]["text"].startswith(
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n")
    # SmolLM2's BOS is <|im_start|> and add_bos_token is false: the prompt's first token is the template's own
    # <|im_start|>, once. add_bos_token true would make it [1, 1, ...], the double BOS of a broken export.
    assert model["bos"]["text"] == "<|im_start|>" and model["add_bos"] is False
    assert prompt["token_ids"][0] == model["bos"]["id"] and prompt["leading_bos"] == 1, prompt


def test_raw_completion_mode_uses_no_template():
    result = chat(find_bundled_gguf(), ["The capital of France is"], max_tokens=8, use_template=False)
    a = result["answers"][0]
    assert a["prompt"]["text"] == "The capital of France is"
    assert a["prompt"]["leading_bos"] == 0 and a["prompt"]["bos_count"] == 0  # add_bos_token is false
    assert 0 < a["token_count"] <= 8 and a["answer"].strip(), a


def test_a_double_bos_shows_in_the_prompt(tmp_path):
    """The check can fail: the bundled GGUF with add_bos_token set true has BOS twice at the start in llama.cpp."""
    broken = tmp_path / "add_bos.gguf"
    shutil.copyfile(find_bundled_gguf(), broken)
    with open(broken, "r+b") as f:  # gguf's GGUFReader would take ~13 s to parse the vocabulary first
        head = f.read(1 << 16)
        key = b"tokenizer.ggml.add_bos_token"
        at = head.index(key) + len(key)
        assert head[at:at + 5] == b"\x07\x00\x00\x00\x00"  # value type 7 (bool), value false
        f.seek(at + 4)
        f.write(b"\x01")
    result = chat(broken, [QUESTION], system=SYSTEM, max_tokens=1)
    prompt = result["answers"][0]["prompt"]
    assert result["model"]["add_bos"] is True
    assert prompt["leading_bos"] == 2 and prompt["token_ids"][:2] == [1, 1], prompt
