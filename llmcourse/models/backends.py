"""Completion backends behind one interface, `complete(prompts) -> list[str]`: a local model, or Lamini.

The local backend wraps any (model, tokenizer) that `load_model` returns and generates in batches.
The Lamini backend is optional: it needs LAMINI_API_KEY (environment or a .env file) and network.
Lamini's client posts without a timeout, so every call here runs in a worker thread with a deadline,
after a quick TCP check of the host; each way it can fail ends in one sentence, never a hang.
"""
from __future__ import annotations

import os
import socket
import threading
from typing import Protocol
from urllib.parse import urlparse

from llmcourse.core.errors import CourseError
from llmcourse.core.paths import BUNDLED
from llmcourse.models.loading import load_model
from llmcourse.models.generation import generate
from llmcourse.data.templates import render

DEFAULT_LAMINI_MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct"


class LLM(Protocol):
    """Anything that answers prompts: each prompt is a string or a list of chat messages ({"role", "content"})."""
    name: str

    def complete(self, prompts: list) -> list[str]: ...


def to_text(prompt) -> str:
    """A prompt as plain text, for backends that take strings: chat turns become Question:/Answer: lines."""
    if isinstance(prompt, str):
        return prompt
    text, previous = "", None
    for m in prompt:
        line = m["content"] if m["role"] == "system" else f"{'Question' if m['role'] == 'user' else 'Answer'}: {m['content']}"
        text += ("" if previous is None else "\n" if (previous, m["role"]) == ("user", "assistant") else "\n\n") + line
        previous = m["role"]
    return text + ("\nAnswer:" if previous == "user" else "")


class LaminiUnavailable(CourseError):
    """Lamini cannot answer (no key, no network, bad key, timeout); the message is one sentence."""


class LocalLLM:
    """A local model (a name or path for `load_model`, or an already loaded model + tokenizer)."""

    def __init__(self, model=BUNDLED, tokenizer=None, *, name: str | None = None,
                 max_new_tokens: int = 48, batch_size: int | None = None, system: str | None = None, template: str = "chat"):
        if isinstance(model, (str, os.PathLike)):
            name = name or str(model)
            model, tokenizer = load_model(str(model))
        if tokenizer is None:
            raise CourseError("LocalLLM(model, tokenizer): pass the tokenizer that load_model returned with the model.")
        self.model, self.tokenizer = model, tokenizer
        self.name = name or getattr(model, "name_or_path", None) or type(model).__name__
        self.max_new_tokens, self.batch_size, self.system = max_new_tokens, batch_size, system
        self.template = template  # how the model was trained to see a question: "chat", "qa", "alpaca"

    def complete(self, prompts: list) -> list[str]:
        """Greedy answers to a list of prompts (strings or chat messages), in order, in left-padded batches."""
        if not prompts:
            return []
        if self.template != "chat":  # a plain-text format: the model was trained without chat turns
            texts = [render(to_text(p), "", self.tokenizer, self.template).prefix for p in prompts]
            return generate(self.model, self.tokenizer, texts, max_new_tokens=self.max_new_tokens,
                            batch_size=self.batch_size, chat=False)
        turns = [[{"role": "user", "content": p}] if isinstance(p, str) else list(p) for p in prompts]
        if self.system:
            turns = [t if t[0]["role"] == "system" else [{"role": "system", "content": self.system}, *t] for t in turns]
        return generate(self.model, self.tokenizer, turns, max_new_tokens=self.max_new_tokens,
                        batch_size=self.batch_size)

    def __repr__(self) -> str:
        return f"LocalLLM({self.name!r})"


def lamini_api_key() -> str | None:
    """LAMINI_API_KEY from the environment, else from a .env file in this folder or a parent."""
    key = os.environ.get("LAMINI_API_KEY")
    if not key:
        from dotenv import dotenv_values, find_dotenv

        path = find_dotenv(usecwd=True)
        key = dotenv_values(path).get("LAMINI_API_KEY") if path else None
    return (key or "").strip() or None


def call_with_timeout(fn, timeout: float, *args, **kwargs):
    """fn(*args, **kwargs) in a daemon thread; TimeoutError after `timeout` s (the thread is abandoned)."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as e:  # handed to the caller's thread below
            box["error"] = e

    worker = threading.Thread(target=target, daemon=True, name="llmcourse-lamini")
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError(f"no answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _reachable(url: str, timeout: float) -> bool:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


class LaminiLLM:
    """Lamini's hosted model via `lamini.Lamini(model_name).generate`, with a deadline on every call."""

    def __init__(self, model_name: str = DEFAULT_LAMINI_MODEL, *, api_key: str | None = None,
                 timeout: float = 60.0, connect_timeout: float = 3.0, max_new_tokens: int | None = 128):
        self.name = f"lamini:{model_name}"
        self.model_name, self.timeout, self.connect_timeout = model_name, timeout, connect_timeout
        self.max_new_tokens = max_new_tokens
        self._key = api_key or lamini_api_key()
        self._client = None

    def __repr__(self) -> str:  # never shows the key
        return f"LaminiLLM({self.model_name!r}, timeout={self.timeout:g})"

    def _fail(self, what: str) -> LaminiUnavailable:
        if self._key:
            what = what.replace(self._key, "***")
        return LaminiUnavailable(what)

    def client(self):
        """The lamini.Lamini client (no network yet); LaminiUnavailable when no key is set."""
        if not self._key:
            raise self._fail("No LAMINI_API_KEY in the environment or a .env file, so the hosted Lamini model is off.")
        if self._client is None:
            import lamini

            self._client = lamini.Lamini(self.model_name, api_key=self._key)
        return self._client

    def check(self) -> "LaminiLLM":
        """Fail within seconds, with one sentence, when there is no key or the host cannot be reached."""
        url = self.client().api_url
        if not _reachable(url, self.connect_timeout):
            raise self._fail(f"Cannot reach {urlparse(url).hostname} within {self.connect_timeout:g} s (no network?), "
                             "so the hosted Lamini model is off.")
        return self

    def complete(self, prompts: list) -> list[str]:
        """Answers from the hosted model (chat messages sent as text); LaminiUnavailable (one sentence) on failure."""
        if not prompts:
            return []
        client = self.client()
        try:
            out = call_with_timeout(client.generate, self.timeout, [to_text(p) for p in prompts],
                                    max_new_tokens=self.max_new_tokens)
        except TimeoutError:
            raise self._fail(f"Lamini did not answer within {self.timeout:g} s, so the hosted model is skipped.") from None
        except Exception as e:
            raise self._explain(e) from None
        return [str(o).strip() for o in out]

    def _explain(self, e: Exception) -> LaminiUnavailable:
        kind = type(e).__name__
        if kind == "AuthenticationError":
            return self._fail("Lamini rejected the API key: check LAMINI_API_KEY in your environment or .env file.")
        if isinstance(e, OSError) or "Connection" in kind:
            return self._fail(f"Cannot reach Lamini ({kind}), so the hosted model is skipped.")
        first = (str(e).splitlines() or [""])[0][:200]
        return self._fail(f"Lamini failed with {kind}: {first}")


class FallbackLLM:
    """Answers with `primary`; on LaminiUnavailable says why once and uses `fallback` from then on."""

    def __init__(self, primary, fallback):
        self.primary, self.fallback, self.failed = primary, fallback, None

    @property
    def name(self) -> str:
        return self.fallback.name if self.failed else self.primary.name

    def complete(self, prompts: list[str]) -> list[str]:
        if not self.failed:
            try:
                return self.primary.complete(prompts)
            except LaminiUnavailable as e:
                self.failed = str(e)
                print(f"{e} Using the local model from here on.")
        return self.fallback.complete(prompts)


def try_lamini(model_name: str = DEFAULT_LAMINI_MODEL, *, verbose: bool = True, **kwargs) -> LaminiLLM | None:
    """A checked LaminiLLM, or None after printing the one-sentence reason (no key, no network ...)."""
    try:
        return LaminiLLM(model_name, **kwargs).check()
    except LaminiUnavailable as e:
        if verbose:
            print(e)
        return None


def get_llm(backend: str = "auto", local=BUNDLED, *, lamini_model: str = DEFAULT_LAMINI_MODEL,
            verbose: bool = True, **local_kwargs):
    """An LLM: "local", "lamini" (raises when unavailable) or "auto" (Lamini if usable, else local, said once).

    local: the local fallback, as a name or path for `load_model` or an LLM object (e.g. a LocalLLM).
    """
    def make_local():
        return local if hasattr(local, "complete") else LocalLLM(local, **local_kwargs)

    if backend == "local":
        return make_local()
    if backend == "lamini":
        return LaminiLLM(lamini_model).check()
    if backend != "auto":
        raise CourseError(f"backend={backend!r}: use 'auto', 'local' or 'lamini'.")
    try:
        hosted = LaminiLLM(lamini_model).check()
    except LaminiUnavailable as e:
        if verbose:
            print(f"{e} Using the local model instead.")
        return make_local()
    return FallbackLLM(hosted, make_local())


FEW_SHOT_INSTRUCTION = "Answer the question in one short sentence, in the style of the examples."


class FewShotLLM:
    """Any LLM with solved examples in front: each prompt is a question, asked after the (question, answer) shots."""

    def __init__(self, llm, examples: list[tuple[str, str]], instruction: str = FEW_SHOT_INSTRUCTION):
        self.llm, self.examples, self.instruction = llm, list(examples), instruction
        self.name = f"{llm.name} + {len(self.examples)}-shot"

    def complete(self, prompts: list) -> list[str]:
        """Put the examples before each question, as earlier chat turns, and let the wrapped LLM answer."""
        return self.llm.complete([few_shot_messages(q, self.examples, self.instruction) for q in prompts])


def few_shot_messages(question: str, examples: list[tuple[str, str]], instruction: str = FEW_SHOT_INSTRUCTION) -> list[dict]:
    """The few-shot prompt as chat turns: the instruction, each example as a user/assistant pair, the question."""
    turns = [{"role": "system", "content": instruction}]
    for q, a in examples:
        turns += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return turns + [{"role": "user", "content": question}]


def few_shot_prompt(question: str, examples: list[tuple[str, str]], instruction: str = FEW_SHOT_INSTRUCTION) -> str:
    """The same few-shot prompt as one text: solved Question:/Answer: pairs, then the real question."""
    return to_text(few_shot_messages(question, examples, instruction))
