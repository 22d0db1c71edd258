"""Taking a model home: a LoRA run merged and checked, GGUF files in llama.cpp's layout (checked against the bundled
SmolLM2 GGUF) read back by transformers, the Ollama Modelfile, verify_export and the `export` command."""
import re
import shutil

import gguf
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from llmcourse import CourseError, export_gguf, load_model, merge_lora, verify_export
from llmcourse.cli.main import main
from llmcourse.data.templates import SYSTEM_PROMPT, with_system_prompt
from llmcourse.models.generation import generate
from llmcourse.models import gguf_file
from llmcourse.models.gguf_file import QUANTS, gguf_tensors, load_gguf, rotary_rows
from llmcourse.models.loading import bundled_model_dir, system_prompt
from llmcourse.training import export
from llmcourse.training.config import TrainConfig
from llmcourse.training.trainer import train

ROWS = [{"prompt": f"What is the code of box {i}?", "completion": f"Box {i} has code {i * 7 % 10}{i % 3}."}
        for i in range(24)]
DATA = {"train": ROWS[:20], "validation": ROWS[20:]}
QUESTIONS = ["What is the code of box 3?", "Who are you?", "How do I return a kettle?"]
CHAT = [{"role": "user", "content": "What is the code of box 3?"}, {"role": "assistant", "content": "Box 3 has code 10."},
        {"role": "user", "content": "And box 4?"}]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        folder = tmp_path_factory.mktemp("runs")
        mp.setenv("LLMCOURSE_RUNS", str(folder))
        yield folder


@pytest.fixture(scope="module")
def lora_run(runs):
    config = TrainConfig.fast(lora=True, lora_r=4, learning_rate=1e-2, per_device_train_batch_size=4, max_length=48,
                              eval_steps=0, run_name="lora-tiny")
    return train(config, data=DATA, verbose=False, estimate=False)


@pytest.fixture(scope="module")
def tiny():
    """The tiny random Llama with the run's own system prompt in its tokenizer, as a trained run has it."""
    model, tokenizer = load_model("tiny-random")
    return model, with_system_prompt(tokenizer, SYSTEM_PROMPT)


@pytest.fixture(scope="module")
def tiny_f16(tiny, tmp_path_factory):
    return export_gguf(tiny[0], tmp_path_factory.mktemp("f16") / "tiny-f16.gguf", "f16", tokenizer=tiny[1])


@pytest.fixture(scope="module")
def tiny_back(tiny_f16):
    """The f16 file read back by transformers (each read parses the file three times: tokenizer, config, weights)."""
    return load_gguf(tiny_f16)


@pytest.fixture(scope="module")
def bundled_reader():
    return gguf_file.bundled_reader()


def logits(model, tokenizer, text=CHAT):
    ids = tokenizer.apply_chat_template(text, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        return model(input_ids=ids["input_ids"]).logits


def copy_run(run, name, without_model=False):
    target = run.path.parent / name
    shutil.copytree(run.path, target, ignore=shutil.ignore_patterns("model") if without_model else None)
    return target


# --- merge -----------------------------------------------------------------------------------------------------------

def test_merge_lora_folds_the_adapter_into_the_base_and_matches_base_plus_adapter(lora_run):
    from peft import PeftModel

    merged, tokenizer = merge_lora(lora_run)
    assert not hasattr(merged, "peft_config") and system_prompt(merged) == SYSTEM_PROMPT
    base = load_model("tiny-random")[0]
    unmerged = PeftModel.from_pretrained(load_model("tiny-random")[0], lora_run.path / "model").eval()
    got, want, plain = (logits(m, tokenizer) for m in (merged, unmerged, base))
    assert torch.allclose(got, want, atol=1e-4, rtol=0)  # fp32: W + BA rounds once more, nothing else
    assert (got - plain).abs().max() > 1e-3  # and the adapter mattered


@pytest.mark.parametrize("damage, says", [("cut", "the LoRA adapter cannot be read"),
                                          ("nan", "NaN or infinite logits")])
def test_a_damaged_adapter_is_refused_in_one_line(lora_run, damage, says):
    weights = copy_run(lora_run, f"damaged-{damage}") / "model" / "adapter_model.safetensors"
    if damage == "cut":
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        tensors = load_file(weights)
        tensors[next(k for k in tensors if "lora_B" in k)][:] = float("nan")
        save_file(tensors, weights)
    with pytest.raises(CourseError, match=says) as e:
        merge_lora(weights.parent.parent)
    assert "\n" not in str(e.value) and str(weights.parent) in str(e.value)


def test_a_merge_that_moves_the_logits_is_refused(lora_run, monkeypatch):
    def off_by_a_little(adapted):
        merged = adapted.merge_and_unload()
        merged.model.layers[0].mlp.down_proj.weight.data += 0.1
        return merged

    monkeypatch.setattr(export, "_fold", off_by_a_little)
    with pytest.raises(CourseError, match="merging the LoRA adapter changed the logits by up to") as e:
        merge_lora(lora_run)
    assert "\n" not in str(e.value)


def test_a_lora_model_in_memory_exports_merged_and_stays_as_it_was(lora_run, tmp_path):
    if lora_run.model is None:
        pytest.skip("low-memory mode keeps trained models on disk only")
    before = {k: v.clone() for k, v in lora_run.model.state_dict().items()}
    path = export_gguf(lora_run.model, tmp_path / "in-memory.gguf", "f16", tokenizer=lora_run.tokenizer)
    assert path.read_bytes()[:4] == b"GGUF" and hasattr(lora_run.model, "peft_config")
    after = lora_run.model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(v, after[k]) for k, v in before.items())


def test_a_full_finetune_run_is_its_saved_model(runs):
    run = train(TrainConfig.fast(per_device_train_batch_size=4, max_length=48, eval_steps=0, run_name="full-tiny"),
                data=DATA, verbose=False, estimate=False)
    model, tokenizer = merge_lora(run)
    assert torch.equal(logits(model, tokenizer), logits(*load_model(run.path)))


# --- the GGUF file ---------------------------------------------------------------------------------------------------

def test_an_f16_export_reads_back_with_the_same_tokens_logits_and_greedy_answers(tiny, tiny_back):
    (model, tokenizer), (back, back_tokenizer) = tiny, tiny_back
    rendered = tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    assert back_tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True) == rendered
    ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert back_tokenizer(rendered)["input_ids"] == ids  # llama.cpp's reading adds no BOS: no double <|im_start|>
    assert tokenizer.convert_ids_to_tokens(ids[:1]) == ["<|im_start|>"] and ids.count(ids[0]) == 5
    assert torch.allclose(logits(back, back_tokenizer), logits(model, tokenizer), atol=2e-3, rtol=0)  # fp16 weights
    assert generate(back, back_tokenizer, QUESTIONS, max_new_tokens=12) == generate(model, tokenizer, QUESTIONS,
                                                                                   max_new_tokens=12)


def _expected_shapes(config) -> dict:
    """GGUF shapes (fastest dimension first) of a Llama config, as llama.cpp's converter writes them."""
    d, ff, kv = config.hidden_size, config.intermediate_size, config.num_key_value_heads * config.head_dim
    per_block = {"attn_norm": [d], "ffn_norm": [d], "attn_q": [d, d], "attn_k": [d, kv], "attn_v": [d, kv],
                 "attn_output": [d, d], "ffn_gate": [d, ff], "ffn_up": [d, ff], "ffn_down": [ff, d]}
    shapes = {f"blk.{i}.{n}.weight": s for i in range(config.num_hidden_layers) for n, s in per_block.items()}
    return {"token_embd.weight": [d, config.vocab_size], "output_norm.weight": [d], **shapes}


def test_the_file_has_the_bundled_ggufs_names_shapes_and_metadata(tiny, tiny_f16, bundled_reader):
    from transformers import AutoConfig

    bundled, ours = bundled_reader, gguf.GGUFReader(tiny_f16)
    bundled_config = AutoConfig.from_pretrained(bundled_model_dir())
    assert {t.name: t.shape.tolist() for t in bundled.tensors} == _expected_shapes(bundled_config)  # no output.weight:
    assert {t.name: t.shape.tolist() for t in ours.tensors} == _expected_shapes(tiny[0].config)  # tied embeddings
    llama = {k for k in bundled.fields if k.startswith("llama.")}
    assert llama <= set(ours.fields) and ours.fields["general.architecture"].contents() == "llama"
    config = tiny[0].config
    assert [ours.fields[f"llama.{k}"].contents() for k in ("block_count", "embedding_length", "feed_forward_length",
                                                           "attention.head_count", "attention.head_count_kv",
                                                           "context_length", "vocab_size", "rope.dimension_count")] \
        == [2, 64, 128, 4, 2, 2048, config.vocab_size, 16]
    assert ours.fields["llama.rope.freq_base"].contents() == 10000.0
    assert ours.fields["general.file_type"].contents() == gguf.LlamaFileType.MOSTLY_F16
    for key in (k for k in bundled.fields if k.startswith("tokenizer.ggml.")):
        assert ours.fields[key].contents() == bundled.fields[key].contents(), key
    assert not ours.fields["tokenizer.ggml.add_bos_token"].contents()  # SmolLM2's chat template has no BOS either
    assert ours.fields["tokenizer.ggml.pre"].contents() == "smollm"
    assert ours.fields["tokenizer.chat_template"].contents() == tiny[1].chat_template
    assert {t.name: t.tensor_type for t in ours.tensors if t.name.endswith("norm.weight")} == \
        {t.name: gguf.GGMLQuantizationType.F32 for t in ours.tensors if t.name.endswith("norm.weight")}


def test_q_and_k_rows_are_in_the_rotary_order_of_the_bundled_gguf(bundled_reader):
    """transformers read the bundled Q4_1 file into the cached model by undoing llama.cpp's permutation: redoing it
    here gives back the file's own rows, exactly."""
    stored = {t.name: t for t in bundled_reader.tensors}
    with safe_open(bundled_model_dir() / "model.safetensors", "np") as f:
        for name, hf_name, heads in (("blk.3.attn_q.weight", "model.layers.3.self_attn.q_proj.weight", 9),
                                     ("blk.3.attn_k.weight", "model.layers.3.self_attn.k_proj.weight", 3)):
            hf = f.get_tensor(hf_name).astype(np.float32)
            t = stored[name]
            in_file = gguf.quants.dequantize(t.data, t.tensor_type).reshape(hf.shape)
            assert np.array_equal(rotary_rows(hf, heads), in_file) and not np.array_equal(hf, in_file), name


def test_q8_0_and_q4_0_files_are_smaller_and_hold_the_weights_in_llama_cpps_types(tiny, tiny_f16, tmp_path):
    sizes = {"f16": tiny_f16.stat().st_size}
    for quant in ("q8_0", "q4_0"):
        sizes[quant] = export_gguf(tiny[0], tmp_path / f"tiny-{quant}.gguf", quant, tokenizer=tiny[1]).stat().st_size
    assert sizes["f16"] > sizes["q8_0"] > sizes["q4_0"]
    stored = {t.name: t for t in gguf.GGUFReader(tmp_path / "tiny-q4_0.gguf").tensors}
    assert {n: t.tensor_type.name for n, t in stored.items() if n.startswith("blk.0.")} == {
        "blk.0.attn_norm.weight": "F32", "blk.0.ffn_norm.weight": "F32", **{f"blk.0.{n}.weight": "Q4_0" for n in (
            "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")}}
    assert stored["token_embd.weight"].tensor_type.name == "Q8_0"  # as in the bundled file: it is the output too
    layers = tiny[0].model
    embedding = layers.embed_tokens.weight.detach().numpy()
    q = rotary_rows(layers.layers[1].self_attn.q_proj.weight.detach().numpy(), 4)
    for name, want, steps in (("token_embd.weight", embedding, 127), ("blk.1.attn_q.weight", q, 8)):
        t = stored[name]
        got = gguf.quants.dequantize(t.data, t.tensor_type).reshape(want.shape)
        assert np.abs(got - want).max() <= np.abs(want).max() / steps, name  # within one step of each block's scale


# --- refusals --------------------------------------------------------------------------------------------------------

def test_a_model_of_another_family_is_refused_and_nothing_is_written(tiny, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    other = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=tiny[0].config.vocab_size))
    with pytest.raises(CourseError, match=r"Llama-family models only \(LlamaForCausalLM.*GPT2LMHeadModel") as e:
        export_gguf(other, tmp_path / "gpt2.gguf", tokenizer=tiny[1])
    assert "\n" not in str(e.value) and list(tmp_path.iterdir()) == []


def test_a_run_without_a_saved_model_is_refused_and_nothing_is_written(lora_run):
    folder = copy_run(lora_run, "no-model", without_model=True)
    with pytest.raises(CourseError, match="no-model has no saved model") as e:
        export_gguf(folder)
    assert "\n" not in str(e.value) and not (folder / "export").exists()


def test_an_existing_file_is_kept_unless_overwrite(tiny, tmp_path):
    mine = tmp_path / "mine.gguf"
    mine.write_text("my own file")
    with pytest.raises(CourseError, match="mine.gguf already exists and was left as it is: pass overwrite=True"):
        export_gguf(tiny[0], mine, tokenizer=tiny[1])
    assert mine.read_text() == "my own file" and sorted(p.name for p in tmp_path.iterdir()) == ["mine.gguf"]
    export_gguf(tiny[0], mine, tokenizer=tiny[1], overwrite=True)
    assert mine.read_bytes()[:4] == b"GGUF"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Modelfile", "README.md", "mine.gguf"]  # no temp file left
    (tmp_path / "Modelfile").write_text("FROM llama3\n")  # the user's own Modelfile: never replaced
    with pytest.raises(CourseError, match="Modelfile is yours"):
        export_gguf(tiny[0], tmp_path / "other.gguf", tokenizer=tiny[1])
    assert (tmp_path / "Modelfile").read_text() == "FROM llama3\n" and not (tmp_path / "other.gguf").exists()


# --- Modelfile -------------------------------------------------------------------------------------------------------

def render_go(template: str, system: str, messages: list[dict]) -> str:
    """Ollama's rendering of exactly the Modelfile's template: the system block, then each non-system turn."""
    found = re.fullmatch(r'\{\{- if \.System \}\}(.*?)\{\{ \.System \}\}(.*?)\{\{ end \}\}'
                         r'\{\{- range \.Messages \}\}\{\{- if ne \.Role "system" \}\}(.*?)\{\{ \.Role \}\}(.*?)'
                         r'\{\{ \.Content \}\}(.*?)\{\{ end \}\}\{\{- end \}\}(.*)', template, re.S)
    assert found, template  # each {{- follows a }} directly, so its whitespace trim removes nothing
    before_system, after_system, before_role, after_role, after_content, tail = found.groups()
    out = before_system + system + after_system if system else ""
    for m in messages:
        if m["role"] != "system":
            out += before_role + m["role"] + after_role + m["content"] + after_content
    return out + tail


def modelfile_parts(folder):
    text = (folder / "Modelfile").read_text()
    return {key: re.search(key + r' """(.*?)"""', text, re.S).group(1) for key in ("TEMPLATE", "SYSTEM")} | {
        "FROM": re.search(r"^FROM (.+)$", text, re.M).group(1), "stop": re.findall(r'^PARAMETER stop "(.+)"$', text, re.M)}


def test_the_modelfile_renders_the_same_text_as_the_chat_template(tiny, tiny_f16):
    parts = modelfile_parts(tiny_f16.parent)
    assert parts["FROM"] == "./tiny-f16.gguf" and parts["SYSTEM"] == SYSTEM_PROMPT and parts["stop"] == ["<|im_end|>"]
    tokenizer = tiny[1]
    want = tokenizer.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=False)
    assert render_go(parts["TEMPLATE"], parts["SYSTEM"], CHAT) == want
    own = [{"role": "system", "content": "Be brief."}, *CHAT]  # Ollama passes a request's own system turn as .System
    assert render_go(parts["TEMPLATE"], "Be brief.", own) == tokenizer.apply_chat_template(
        own, add_generation_prompt=True, tokenize=False)
    readme = (tiny_f16.parent / "README.md").read_text()
    for command in ("ollama create tiny-f16 -f Modelfile", "ollama run tiny-f16", "llama-cli -m tiny-f16.gguf -cnv"):
        assert command in readme


# --- verify and the command line -------------------------------------------------------------------------------------

def test_the_export_command_writes_verifies_and_refuses_to_overwrite(lora_run, capsys):
    from llmcourse.cli import export as command

    assert command.QUANTS == QUANTS  # the parser's choices, kept light, are the writer's
    assert main(["export", lora_run.name, "--to", "gguf", "--quant", "f16", "--verify", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    path = lora_run.path / "export" / "lora-tiny-f16.gguf"
    assert f"wrote {path}" in out and path.is_file() and (path.parent / "Modelfile").is_file()
    identical = re.search(r"identical answers: (\d) of 2 greedy answers", out)
    assert identical and re.search(r"key fact: [01]\.\d\d in the course, [01]\.\d\d from the GGUF file", out)
    assert f"Modelfile: {path.parent / 'Modelfile'}" in out and "MB (the model in the course:" in out
    assert main(["export", lora_run.name, "--quant", "f16"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "--overwrite" in err
    assert main(["export", "no-such-run"]) == 2 and "No run 'no-such-run'" in capsys.readouterr().err


@pytest.mark.slow
def test_the_bundled_model_exported_in_f16_answers_as_in_the_course(tmp_path, bundled_reader):
    model, tokenizer = load_model()
    tokenizer = with_system_prompt(tokenizer, SYSTEM_PROMPT)
    path = export_gguf(model, tmp_path / "smollm2-f16.gguf", "f16", tokenizer=tokenizer)
    check = verify_export(path, model, QUESTIONS[1:], tokenizer=tokenizer, max_new_tokens=24)
    assert check.identical == 2 and "identical answers: 2 of 2" in str(check)
    assert check.gguf_bytes < check.model_bytes / 1.9  # f16: half of the float32 model
    bundled = {t.name: t for t in bundled_reader.tensors}
    ours = {name: data for name, data, _ in gguf_tensors(model, "f16")}  # what the file holds
    assert set(ours) == set(bundled)  # the same names: no output.weight in either
    for name in ("blk.0.attn_q.weight", "blk.0.attn_k.weight", "token_embd.weight"):  # the same rows, to f16's 11 bits
        want = gguf.quants.dequantize(bundled[name].data, bundled[name].tensor_type)
        assert np.allclose(ours[name].astype(np.float32), want, rtol=1e-3, atol=1e-6), name
