"""Prompt templates: how one (prompt, completion) pair becomes the text the model trains on."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import CourseError

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


def render(prompt: str, completion: str, tokenizer=None, template: str = "chat", system: str | None = None) -> Rendered:
    """Split an example into the prompt part (masked from the loss) and the answer part (trained).

    template: "chat" (the tokenizer's chat template), "alpaca", "qa" (### Question:/### Answer:),
    or any string containing "{prompt}" (your own).
    The answer ends with the end-of-sequence token so the model learns to stop.
    """
    eos = getattr(tokenizer, "eos_token", None) or ""
    if template == "chat":
        if tokenizer is None or getattr(tokenizer, "chat_template", None) is None:
            raise CourseError("template='chat' needs a tokenizer with a chat template; use template='qa' or 'alpaca'.")
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        prefix = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": completion}], tokenize=False)
        if not full.startswith(prefix):  # templates that rewrite earlier turns: fall back to prefix + answer + eos
            return Rendered(prefix, completion + eos)
        # The template's own closing tokens (e.g. "<|im_end|>\n") belong to the answer: the model must learn them.
        return Rendered(prefix, full[len(prefix):])
    fmt = TEMPLATES.get(template, template)
    if "{prompt}" not in fmt:
        raise CourseError(f"template={template!r} is neither 'chat', 'alpaca', 'qa' nor a string with {{prompt}} in it.")
    return Rendered(fmt.format(prompt=prompt), completion + eos)


def format_example(example: dict, tokenizer=None, template: str = "chat") -> str:
    """Exactly the text the model will see for one example (prompt + answer + end token)."""
    return render(example["prompt"], example["completion"], tokenizer, template, example.get("system")).text
