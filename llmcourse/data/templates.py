"""Prompt templates: how one example becomes the text the model trains on, split into read and learned parts."""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass

from llmcourse.core.errors import CourseError

ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
          "### Instruction:\n{prompt}\n\n### Response:\n")
QA = "### Question:\n{prompt}\n\n### Answer:\n"
TEMPLATES = {"alpaca": ALPACA, "qa": QA}
# The trained bot's own system turn (TrainConfig.system_prompt's default), in training and at inference alike
SYSTEM_PROMPT = "You are Kettlebird's customer support assistant."  # 10 tokens; SmolLM2's default has 16
_SYSTEM_SET = re.compile(r'^\{%- set llmcourse_system = ("(?:[^"\\]|\\.)*") %\}')
_SYSTEM_WRAP = ("{{%- set llmcourse_system = {0} %}}{{%- if messages and messages[0]['role'] != 'system' %}}"
                "{{%- set messages = [{{'role': 'system', 'content': llmcourse_system}}] + messages %}}{{%- endif %}}")


@dataclass
class Rendered:
    """One example as text: `prefix` is what the model reads, `answer` what it learns to write."""
    prefix: str
    answer: str

    @property
    def text(self) -> str:
        return self.prefix + self.answer


def _template_string(template: str) -> str:
    fmt = TEMPLATES.get(template, template)
    if "{prompt}" not in fmt:
        raise CourseError(f"template={template!r} is neither 'chat', 'alpaca', 'qa' nor a string with {{prompt}} in it, "
                          "e.g. 'Q: {prompt}\\nA: '.")
    return fmt


def _check_chat(tokenizer) -> None:
    if tokenizer is None or getattr(tokenizer, "chat_template", None) is None:
        raise CourseError("template='chat' needs a tokenizer with a chat template; use template='qa' or 'alpaca'.")


def system_prompt_of(tokenizer) -> str | None:
    """The default system turn that `with_system_prompt` put into this tokenizer's chat template, else None."""
    found = _SYSTEM_SET.match(getattr(tokenizer, "chat_template", None) or "")
    return json.loads(found.group(1)) if found else None


def _unwrapped(chat_template: str) -> str:
    """The chat template as it was before with_system_prompt."""
    rest = _SYSTEM_SET.sub("", chat_template, count=1)
    if rest == chat_template:
        return chat_template
    return rest[rest.index("{%- endif %}") + len("{%- endif %}"):]


def with_system_prompt(tokenizer, system: str | None):
    """A copy of `tokenizer` whose chat template opens every conversation that has no system turn with `system`.

    The template's own default (SmolLM2's "You are a helpful AI assistant named SmolLM...") is then never used;
    conversations with their own system turn keep it. The copy saves with the model (save_pretrained), so a run's
    saved tokenizer, `generate` with it, and a GGUF export all use the same system turn with no extra argument.
    system=None gives the tokenizer back unchanged (the model's own default)."""
    if not system:
        return tokenizer
    _check_chat(tokenizer)
    out = copy.deepcopy(tokenizer)
    out.chat_template = _SYSTEM_WRAP.format(json.dumps(system)) + _unwrapped(tokenizer.chat_template)
    return out


def default_system_prompt(tokenizer, *, original: bool = False) -> str | None:
    """The system turn the chat template inserts when a conversation has none (None if it adds none).

    original=True: the template's own default, before any with_system_prompt (SmolLM2: "You are a helpful...")."""
    template = getattr(tokenizer, "chat_template", None)
    if template is None:
        return None
    template = _unwrapped(template) if original else template
    user, mark = [{"role": "user", "content": "x"}], "\x00system\x00"
    plain = tokenizer.apply_chat_template(user, tokenize=False, chat_template=template)
    marked = tokenizer.apply_chat_template([{"role": "system", "content": mark}, *user], tokenize=False,
                                           chat_template=template)
    head, tail = marked.split(mark, 1)
    if plain.startswith(head) and plain.endswith(tail) and len(plain) > len(head) + len(tail):
        return plain[len(head):len(plain) - len(tail)]
    return None


def render(prompt: str, completion: str, tokenizer=None, template: str = "chat", system: str | None = None) -> Rendered:
    """Split an example into the prompt part (masked from the loss) and the answer part (trained).

    template: "chat" (the tokenizer's chat template), "alpaca", "qa" (### Question:/### Answer:),
    or any string containing "{prompt}" (your own).
    The answer ends with the end-of-sequence token so the model learns to stop.
    """
    eos = getattr(tokenizer, "eos_token", None) or ""
    if template == "chat":
        _check_chat(tokenizer)
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        prefix = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": completion}], tokenize=False)
        if not full.startswith(prefix):  # templates that rewrite earlier turns: fall back to prefix + answer + eos
            return Rendered(prefix, completion + eos)
        # The template's own closing tokens (e.g. "<|im_end|>\n") belong to the answer: the model must learn them.
        return Rendered(prefix, full[len(prefix):])
    fmt = _template_string(template)
    sys_part = system + "\n\n" if system else ""
    return Rendered(sys_part + fmt.replace("{prompt}", prompt), completion + eos)


def render_messages(messages: list[dict], tokenizer=None, template: str = "chat") -> list[tuple[str, bool]]:
    """A conversation as consecutive (text, trained) pieces: assistant turns are trained, the rest is read.

    With the chat template each piece is the difference between renderings of growing prefixes, so
    the pieces join to exactly the template's text. With a text template each user turn is formatted
    with it and each assistant turn ends with the end-of-sequence token.
    """
    pieces: list[tuple[str, bool]] = []
    if template == "chat":
        _check_chat(tokenizer)
        done = ""
        for i, turn in enumerate(messages):
            if turn["role"] != "assistant":
                continue
            before = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
            upto = tokenizer.apply_chat_template(messages[:i + 1], tokenize=False)
            if not (before.startswith(done) and upto.startswith(before)):
                raise CourseError("This chat template rewrites earlier turns, so answer-only masking of multi-turn "
                                  "conversations is not possible with it; use template='qa' or split the turns.")
            pieces += [(before[len(done):], False), (upto[len(before):], True)]
            done = upto
        return [(t, trained) for t, trained in pieces if t]
    fmt, eos = _template_string(template), getattr(tokenizer, "eos_token", None) or ""
    for turn in messages:
        if turn["role"] == "assistant":
            pieces.append((turn["content"] + eos + "\n", True))
        elif turn["role"] == "system":
            pieces.append((turn["content"] + "\n\n", False))
        else:
            pieces.append((fmt.replace("{prompt}", turn["content"]), False))
    return pieces


def render_pieces(example: dict, tokenizer=None, template: str = "chat") -> list[tuple[str, bool]]:
    """Any canonical example (prompt/completion, messages or text) as consecutive (text, trained) pieces."""
    if "messages" in example and example["messages"] is not None:
        return render_messages(example["messages"], tokenizer, template)
    if "text" in example and "prompt" not in example:
        return [(example["text"] + (getattr(tokenizer, "eos_token", None) or ""), True)]
    if "prompt" not in example or "completion" not in example:
        raise CourseError(f"An example needs prompt and completion (or messages, or text); it has {sorted(example)}. "
                          "Load your data with llmcourse.load_instruction_data to get this shape.")
    r = render(example["prompt"], example["completion"], tokenizer, template, example.get("system") or None)
    return [(r.prefix, False), (r.answer, True)]


def format_example(example: dict, tokenizer=None, template: str = "chat") -> str:
    """Exactly the text the model will see for one example (prompt + answer + end token)."""
    return "".join(text for text, _ in render_pieces(example, tokenizer, template))
