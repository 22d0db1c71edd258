"""Prompt templates: how one example becomes the text the model trains on, split into read and learned parts."""
from __future__ import annotations

from dataclasses import dataclass

from llmcourse.core.errors import CourseError

ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
          "### Instruction:\n{prompt}\n\n### Response:\n")
QA = "### Question:\n{prompt}\n\n### Answer:\n"
TEMPLATES = {"alpaca": ALPACA, "qa": QA}


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
