"""One tokenized example as a table of tokens: which are only read (masked) and which the model learns (trained)."""
from __future__ import annotations

import html
from dataclasses import dataclass

from llmcourse.data.tokenization import IGNORE, tokenize_example

COLOURS = {"masked": "#e8e8e8", "trained": "#b7e4c7", "boundary": "#ffd6a5"}


def token_text(tokenizer, token_id: int) -> str:
    """A token as visible text: newlines as \\n, a leading space as ␣."""
    s = tokenizer.decode([token_id])
    s = s.replace("\n", "\\n").replace("\t", "\\t")
    return "␣" + s[1:] if s.startswith(" ") else s


@dataclass
class TokenTable:
    """Rows of (position, token, id, label, status); shows as coloured HTML in Jupyter, plain text elsewhere."""
    rows: list[tuple[int, str, int, int, str]]
    hidden: int = 0
    per_line: int = 12

    @property
    def trained(self) -> int:
        return sum(r[4] == "trained" for r in self.rows)

    def __str__(self) -> str:
        lines = [f"{'pos':>4}  {'token':<18} {'id':>6}  {'label':>6}  status"]
        lines += [f"{p:>4}  {t[:18]:<18} {i:>6}  {lab:>6}  {s}" for p, t, i, lab, s in self.rows]
        if self.hidden:
            lines.append(f"… {self.hidden} more tokens")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        cell = "padding:2px 5px;border:1px solid #fff;font-family:monospace;font-size:12px;white-space:pre"
        parts = ["<div>"]
        for start in range(0, len(self.rows), self.per_line):
            chunk = self.rows[start:start + self.per_line]
            tr_tok = "".join(f'<td style="{cell};background:{COLOURS[s]}" title="{s}">{html.escape(t)}</td>'
                             for _, t, _, _, s in chunk)
            tr_id = "".join(f'<td style="{cell};color:#555">{i}</td>' for _, _, i, _, _ in chunk)
            tr_lab = "".join(f'<td style="{cell};color:#555">{"—" if lab == IGNORE else lab}</td>'
                             for _, _, _, lab, _ in chunk)
            parts.append(f'<table style="border-collapse:collapse;margin-bottom:6px">'
                         f'<tr><th style="{cell}">token</th>{tr_tok}</tr><tr><th style="{cell}">id</th>{tr_id}</tr>'
                         f'<tr><th style="{cell}">label</th>{tr_lab}</tr></table>')
        legend = " ".join(f'<span style="background:{c};padding:1px 6px">{k}</span>' for k, c in COLOURS.items())
        more = f" · … {self.hidden} more tokens" if self.hidden else ""
        parts.append(f'<div style="font-size:12px">{legend} · {self.trained} of {len(self.rows)} tokens trained'
                     f' (label "—" = -100, no loss){more}</div></div>')
        return "".join(parts)


def show_tokens(row, tokenizer, *, template: str = "chat", max_tokens: int | None = None, **tokenize_kw) -> TokenTable:
    """A tokenized row (input_ids + labels), or a canonical example with prompt/completion, as a TokenTable.

    status: "trained" (the label is the token, it counts in the loss), "masked" (label -100), or
    "boundary" (the first token of a packed example, masked so it is not predicted from the previous one).
    """
    if "input_ids" not in row:
        row = tokenize_example(row["prompt"], row["completion"], tokenizer, template=template, **tokenize_kw)
    ids, labels = list(row["input_ids"]), list(row["labels"])
    starts = {i for i, p in enumerate(row.get("position_ids") or []) if p == 0 and i > 0}
    rows = [(i, token_text(tokenizer, t), t, lab, "boundary" if i in starts else
             "masked" if lab == IGNORE else "trained") for i, (t, lab) in enumerate(zip(ids, labels))]
    hidden = 0
    if max_tokens is not None and len(rows) > max_tokens:
        rows, hidden = rows[:max_tokens], len(rows) - max_tokens
    return TokenTable(rows, hidden)
