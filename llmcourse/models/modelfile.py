"""Running an exported model outside the course: an Ollama Modelfile and a README with the three commands.

The Modelfile's TEMPLATE is Ollama's Go-template form of SmolLM2's ChatML chat template, so `ollama run` shows the
model the same text the course did; SYSTEM is the run's own system prompt.
"""
from __future__ import annotations

import re

from llmcourse.core.errors import CourseError
from llmcourse.data.templates import default_system_prompt

MARK = "Written by llmcourse"  # in the first line of the files an export writes: only such files are replaced
CHATML = ('{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}'
          '{{- range .Messages }}{{- if ne .Role "system" }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n'
          '{{ end }}{{- end }}<|im_start|>assistant\n')
STOP = "<|im_end|>"


def chatml(messages: list[dict], system: str | None) -> str:
    """The ChatML text of a conversation with a system turn first, ending where the assistant starts to answer."""
    turns = [m for m in messages if m["role"] != "system"]
    head = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    return head + "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in turns) + \
        "<|im_start|>assistant\n"


def modelfile_system(tokenizer) -> str:
    """The system prompt the Modelfile gives Ollama: the one the chat template opens with (the run's own)."""
    system = default_system_prompt(tokenizer) or ""
    sample = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
              {"role": "user", "content": "Bye"}]
    rendered = tokenizer.apply_chat_template(sample, tokenize=False, add_generation_prompt=True)
    if rendered != chatml(sample, system):
        raise CourseError("The tokenizer's chat template is not SmolLM2's ChatML, so an Ollama Modelfile would show "
                          "the model other text than the course did; export a model with SmolLM2's chat template.")
    if '"""' in system:
        raise CourseError('The system prompt holds """, which a Modelfile cannot quote: remove it and train again.')
    return system


def written_by_export(path) -> bool:
    """Whether a file is one an export wrote (its first line carries MARK), so a new export may replace it."""
    try:
        with open(path, encoding="utf-8") as f:
            return MARK in f.readline()
    except (OSError, UnicodeDecodeError):
        return False


def ollama_name(gguf_name: str) -> str:
    """A model name Ollama accepts, from the GGUF file's name: lowercase letters, digits, '-', '_' and '.'."""
    stem = gguf_name.removesuffix(".gguf").lower()
    return re.sub(r"[^a-z0-9._-]+", "-", stem).strip("-._") or "my-model"


def modelfile_text(gguf_name: str, system: str) -> str:
    """The Modelfile: FROM the file beside it, the ChatML TEMPLATE, the SYSTEM prompt, stop at <|im_end|>."""
    return (f"# {MARK} for {gguf_name}: `ollama create {ollama_name(gguf_name)} -f Modelfile` in this folder.\n"
            f"FROM ./{gguf_name}\n"
            f'TEMPLATE """{CHATML}"""\n'
            f'SYSTEM """{system}"""\n'
            f'PARAMETER stop "{STOP}"\n'
            "# greedy, as the course answers (and as the export was checked): the same question, the same answer\n"
            "PARAMETER temperature 0\n")


def readme_text(gguf_name: str, size_mb: float, quant: str, system: str, chat_template: bool = True) -> str:
    """The README beside the export: what the files are and the three commands that run them."""
    name, quoted = ollama_name(gguf_name), re.sub(r'(["$`\\])', r"\\\1", system)  # inside a shell's "..."
    return (f"<!-- {MARK} for {gguf_name} -->\n# {name}\n\n"
            f"`{gguf_name}` ({size_mb:.0f} MB, {quant}) is your finetuned model in one file; `Modelfile` tells Ollama "
            "how to talk to it (chat template, system prompt, stop token). Run these in this folder.\n\n"
            "With [Ollama](https://ollama.com) (install it first; the course does not):\n\n"
            f"```bash\nollama create {name} -f Modelfile   # once: registers the model\n"
            f"ollama run {name}                    # chat with it\n```\n\n"
            "With llama.cpp (install it, or build it from github.com/ggml-org/llama.cpp; it provides `llama-cli`):\n\n"
            f"```bash\nllama-cli -m {gguf_name} -cnv\n```\n\n"
            + ("The file's own chat template opens each chat with the system prompt the model was trained with. A "
               "llama.cpp that formats chats with its built-in ChatML instead (without `--jinja`) leaves it out: add "
               "`--jinja`, or give it: " if chat_template else "This file holds no chat template (exported with chat_template=False), so "
               "llama.cpp guesses one and knows no system prompt: give it ")
            + f"`-sys \"{quoted}\"`.\n")
