"""Completion backends: the local model, and Lamini with its HTTP layer mocked (no network in tests)."""
import threading

import pytest
import requests

from llmcourse.models import backends as llm_mod
from llmcourse.models.generation import generate
from llmcourse.models.backends import (FallbackLLM, FewShotLLM, LaminiLLM, LaminiUnavailable, LocalLLM, call_with_timeout,
                           few_shot_messages, few_shot_prompt, get_llm, lamini_api_key, to_text, try_lamini)
from llmcourse.models.loading import load_model

KEY = "sk-test-0123456789abcdef"


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-random")


@pytest.fixture
def no_key(monkeypatch, tmp_path):
    monkeypatch.delenv("LAMINI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here or above (tmp_path lies outside the repo)


@pytest.fixture
def online(monkeypatch):
    """The TCP check succeeds without touching the network."""
    class Sock:
        def close(self):
            pass
    calls = []
    monkeypatch.setattr(llm_mod.socket, "create_connection", lambda addr, timeout: calls.append(addr) or Sock())
    return calls


def fake_post(monkeypatch, status=200, body=None, wait: threading.Event | None = None):
    """Replace requests.post inside lamini's REST layer; returns the list of calls it received."""
    import lamini.api.rest_requests as rest

    calls = []

    def post(url, headers=None, json=None, files=None):
        calls.append({"url": url, "headers": headers, "json": json})
        if wait is not None:
            wait.wait(30)  # a server that never answers (released at teardown)
        resp = requests.Response()
        resp.status_code = status
        resp._content = __import__("json").dumps(body).encode()
        resp.url = url
        return resp

    monkeypatch.setattr(rest.requests, "post", post)
    return calls


def test_local_llm_answers_in_order_like_generate(tiny):
    model, tok = tiny
    prompts = ["Hi", "What is the K2 warranty, in months, and where do I file a claim?", "Why?"]
    local = LocalLLM(model, tok, max_new_tokens=5, batch_size=2)
    answers = local.complete(prompts)
    assert answers == [generate(model, tok, p, max_new_tokens=5) for p in prompts]
    assert local.complete([]) == []


def test_local_llm_takes_chat_messages_and_adds_its_system_turn(tiny):
    model, tok = tiny
    turns = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert LocalLLM(model, tok, max_new_tokens=4).complete([turns]) == [generate(model, tok, turns, max_new_tokens=4)]
    with_system = LocalLLM(model, tok, max_new_tokens=4, system="Be brief.")
    assert with_system.complete(["Hi"]) == [generate(model, tok, turns, max_new_tokens=4)]
    assert with_system.complete([turns]) == [generate(model, tok, turns, max_new_tokens=4)]  # not added twice


def test_local_llm_with_a_plain_template_skips_the_chat_format(tiny):
    model, tok = tiny
    answers = LocalLLM(model, tok, max_new_tokens=4, template="qa").complete(["Hi"])
    assert answers == [generate(model, tok, "### Question:\nHi\n\n### Answer:\n", max_new_tokens=4, chat=False)]


def test_local_llm_loads_by_name():
    local = LocalLLM("tiny-random", max_new_tokens=2)
    assert local.name == "tiny-random" and len(local.complete(["a", "b"])) == 2


def test_key_from_environment_or_dotenv(monkeypatch, tmp_path, no_key):
    assert lamini_api_key() is None
    (tmp_path / ".env").write_text(f"LAMINI_API_KEY={KEY}\n")
    sub = tmp_path / "notebooks"
    sub.mkdir()
    monkeypatch.chdir(sub)  # a .env in a parent folder counts, as from notebooks/
    assert lamini_api_key() == KEY
    monkeypatch.setenv("LAMINI_API_KEY", "from-env")
    assert lamini_api_key() == "from-env"


def test_no_key_is_one_sentence(no_key, capsys):
    with pytest.raises(LaminiUnavailable, match=r"^No LAMINI_API_KEY in the environment or a \.env file"):
        LaminiLLM().check()
    assert try_lamini() is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "LAMINI_API_KEY" in out


def test_no_network_fails_at_the_tcp_check(monkeypatch):
    seen = []

    def refuse(addr, timeout):
        seen.append((addr, timeout))
        raise OSError("Network is unreachable")

    monkeypatch.setattr(llm_mod.socket, "create_connection", refuse)
    posts = fake_post(monkeypatch)
    with pytest.raises(LaminiUnavailable, match=r"Cannot reach api\.lamini\.ai within 3 s"):
        LaminiLLM(api_key=KEY).check()
    assert seen == [(("api.lamini.ai", 443), 3.0)] and posts == []


def test_timeout_gives_up_and_says_so(monkeypatch, online):
    never = threading.Event()
    fake_post(monkeypatch, body=[{"output": "late"}], wait=never)
    try:
        with pytest.raises(LaminiUnavailable, match=r"did not answer within 0\.2 s"):
            LaminiLLM(api_key=KEY, timeout=0.2).check().complete(["q"])
    finally:
        never.set()


def test_bad_key_is_reported_without_the_key(monkeypatch, online, capsys):
    fake_post(monkeypatch, status=401, body={"detail": f"Invalid API key {KEY}"})
    hosted = LaminiLLM(api_key=KEY).check()
    with pytest.raises(LaminiUnavailable, match="rejected the API key") as err:
        hosted.complete(["q"])
    assert KEY not in str(err.value) and KEY not in repr(hosted)
    assert KEY not in capsys.readouterr().out


def test_other_errors_are_redacted(monkeypatch, online):
    fake_post(monkeypatch, status=500, body={"detail": f"boom for {KEY}"})
    with pytest.raises(LaminiUnavailable, match=r"Lamini failed with APIError") as err:
        LaminiLLM(api_key=KEY).complete(["q"])
    assert KEY not in str(err.value) and "***" in str(err.value)


def test_success_posts_the_prompts_and_returns_outputs(monkeypatch, online):
    calls = fake_post(monkeypatch, body=[{"output": " 27 months. "}, {"output": "E17"}])
    hosted = LaminiLLM("some/model", api_key=KEY, max_new_tokens=32).check()
    assert hosted.complete(["warranty?", [{"role": "user", "content": "error code?"}]]) == ["27 months.", "E17"]
    (call,) = calls
    assert call["url"] == "https://api.lamini.ai/v1/completions"
    assert call["headers"]["Authorization"] == f"Bearer {KEY}"
    assert call["json"]["model_name"] == "some/model"
    assert call["json"]["prompt"] == ["warranty?", "Question: error code?\nAnswer:"]  # chat turns go as text
    assert call["json"]["max_new_tokens"] == 32
    assert online == [("api.lamini.ai", 443)]


def test_fallback_says_why_once_then_uses_the_local_model(capsys):
    class Broken:
        name = "lamini:x"

        def complete(self, prompts):
            raise LaminiUnavailable("Lamini did not answer within 1 s, so the hosted model is skipped.")

    class Echo:
        name = "local"

        def complete(self, prompts):
            return [p.upper() for p in prompts]

    both = FallbackLLM(Broken(), Echo())
    assert both.complete(["a"]) == ["A"] and both.complete(["b"]) == ["B"]
    assert both.name == "local"
    assert capsys.readouterr().out.count("did not answer") == 1


def test_get_llm_auto_without_key_is_local(no_key, capsys):
    chosen = get_llm("auto", "tiny-random", max_new_tokens=2)
    assert isinstance(chosen, LocalLLM)
    assert capsys.readouterr().out == ("No LAMINI_API_KEY in the environment or a .env file, so the hosted Lamini "
                                       "model is off. Using the local model instead.\n")
    with pytest.raises(Exception, match="backend="):
        get_llm("cloud")


def test_call_with_timeout_passes_values_and_errors_through():
    assert call_with_timeout(lambda a, b=0: a + b, 5, 2, b=3) == 5
    with pytest.raises(ZeroDivisionError):
        call_with_timeout(lambda: 1 / 0, 5)


def test_few_shot_messages_and_their_text_form():
    turns = few_shot_messages("Q2?", [("Q1?", "A1.")], instruction="Answer.")
    assert turns == [{"role": "system", "content": "Answer."}, {"role": "user", "content": "Q1?"},
                     {"role": "assistant", "content": "A1."}, {"role": "user", "content": "Q2?"}]
    assert to_text(turns) == "Answer.\n\nQuestion: Q1?\nAnswer: A1.\n\nQuestion: Q2?\nAnswer:"
    assert to_text("plain") == "plain"

    class Echo:
        name = "echo"

        def complete(self, prompts):
            return prompts

    shots = FewShotLLM(Echo(), [("Q1?", "A1.")], instruction="Answer.")
    assert shots.complete(["Q2?"]) == [turns] and shots.name == "echo + 1-shot"


def test_few_shot_prompt_layout():
    text = few_shot_prompt("Q3?", [("Q1?", "A1."), ("Q2?", "A2.")], instruction="Answer.")
    assert text == "Answer.\n\nQuestion: Q1?\nAnswer: A1.\n\nQuestion: Q2?\nAnswer: A2.\n\nQuestion: Q3?\nAnswer:"



def test_get_llm_auto_falls_back_to_a_given_llm_when_lamini_fails_later(monkeypatch, online, capsys):
    monkeypatch.setenv("LAMINI_API_KEY", KEY)
    fake_post(monkeypatch, status=401, body={"detail": "bad key"})

    class Echo:
        name = "local"

        def complete(self, prompts):
            return ["local answer"] * len(prompts)

    local = Echo()
    chosen = get_llm("auto", local)
    assert isinstance(chosen, FallbackLLM) and chosen.fallback is local
    assert chosen.complete(["q"]) == ["local answer"]  # the bad key shows at the first request
    out = capsys.readouterr().out
    assert out == ("Lamini rejected the API key: check LAMINI_API_KEY in your environment or .env file. "
                   "Using the local model from here on.\n")
    assert get_llm("local", local) is local
