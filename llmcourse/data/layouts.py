"""Field layouts of instruction data, detected from the columns and mapped to one canonical shape.

Canonical shapes: `prompt`/`completion` (one question, one answer), `messages` (chat turns as
{"role", "content"}), or `text` (plain pages for self-supervised training).
"""
from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass

from llmcourse.core.errors import CourseError
from llmcourse.data.readers import SKIP_HINT, Record

# Metadata columns carried over unchanged when present.
METADATA = ("id", "fact_id", "source", "split", "system", "category")
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "bot": "assistant",
         "model": "assistant", "chatgpt": "assistant", "system": "system"}


@dataclass(frozen=True)
class Layout:
    """A named layout: which source column fills each canonical field (optional ones may be absent)."""
    name: str
    fields: dict  # canonical name -> source column
    optional: tuple = ()

    @property
    def kind(self) -> str:
        return "messages" if "messages" in self.fields else "text" if "text" in self.fields else "prompt"


# Checked in this order; the first whose required columns are all present wins.
LAYOUTS = [
    Layout("messages", {"messages": "messages"}),
    Layout("conversations", {"messages": "conversations"}),
    Layout("instruction/input/output", {"instruction": "instruction", "input": "input", "completion": "output"},
           optional=("input",)),
    Layout("prompt/completion", {"prompt": "prompt", "completion": "completion"}),
    Layout("question/answer", {"prompt": "question", "completion": "answer"}),
    Layout("input/output", {"prompt": "input", "completion": "output"}),
    Layout("prompt/response", {"prompt": "prompt", "completion": "response"}),
    Layout("text", {"text": "text"}),
]
KNOWN = ", ".join(lay.name for lay in LAYOUTS)


def parse_fields(fields) -> dict:
    """A fields override as a dict {canonical: column}: accepts a dict, 'prompt=q,completion=a' or ('q', 'a')."""
    if fields is None or isinstance(fields, dict):
        mapping = dict(fields or {})
    elif isinstance(fields, str):
        try:
            mapping = dict(part.split("=", 1) for part in fields.split(","))
        except ValueError:
            raise CourseError(f"fields={fields!r}: write it as 'prompt=COLUMN,completion=COLUMN' "
                              "(or 'messages=COLUMN', or 'text=COLUMN').") from None
    elif isinstance(fields, (tuple, list)) and len(fields) == 2:
        mapping = {"prompt": fields[0], "completion": fields[1]}
    else:
        raise CourseError(f"fields={fields!r}: pass a dict like {{'prompt': 'q', 'completion': 'a'}}.")
    mapping = {k.strip(): v.strip() for k, v in mapping.items()}
    allowed = [{"prompt", "completion"}, {"prompt", "completion", "system"}, {"messages"}, {"text"}]
    if set(mapping) not in allowed:
        raise CourseError(f"fields={fields!r}: name either prompt and completion, or messages, or text "
                          f"(found {sorted(mapping)}).")
    return mapping


def detect_layout(columns, fields=None, among=LAYOUTS) -> Layout:
    """The layout of a table with these columns (case-insensitive), or the user's override; else a clear error."""
    cols = {c.lower(): c for c in columns}
    if fields is not None:
        mapping = parse_fields(fields)
        missing = [c for c in mapping.values() if c not in columns and c.lower() not in cols]
        if missing:
            raise CourseError(f"fields: column(s) {missing} not found; the data has columns {sorted(columns)}.")
        return Layout("custom (" + ", ".join(f"{k}={v}" for k, v in mapping.items()) + ")",
                      {k: cols.get(v.lower(), v) if v not in columns else v for k, v in mapping.items()})
    for lay in among:
        if _fits(lay, cols):
            return Layout(lay.name, {k: cols[c] for k, c in lay.fields.items() if c in cols}, lay.optional)
    raise CourseError(
        f"Unknown layout: the columns are {sorted(columns)}. Known layouts: {KNOWN}. Tell llmcourse which columns "
        "to use with fields={'prompt': 'YOUR_QUESTION_COLUMN', 'completion': 'YOUR_ANSWER_COLUMN'} "
        "(CLI: --fields prompt=COL,completion=COL).")


def _fits(layout: Layout, lower_columns) -> bool:
    return all(c in lower_columns for k, c in layout.fields.items() if k not in layout.optional)


def _row_layout(row: dict) -> Layout | None:
    """The first known layout whose columns this one row has, or None."""
    cols = {str(c).lower() for c in row}
    return next((lay for lay in LAYOUTS if _fits(lay, cols)), None)


def layout_of(records: list[Record], fields=None, source: str = "data") -> Layout:
    """The layout most rows have the columns of (a tie goes to the earlier row's), so one odd row never decides it."""
    columns = columns_of(records, sample=None)
    counts = Counter(lay.name for rec in records if (lay := _row_layout(rec.data)))
    name = counts.most_common(1)[0][0] if counts else None  # most_common keeps first-seen order among equal counts
    try:
        if fields is not None or name is None:
            return detect_layout(columns, fields)
        return detect_layout(columns, among=[lay for lay in LAYOUTS if lay.name == name])
    except CourseError as e:  # say which file
        raise CourseError(f"{source}: {e}") from None


class RowError(Exception):
    """One row does not fit the layout; `str()` says where and why."""


def blank(text: str) -> bool:
    """True when nothing visible is left: spaces, and invisible format characters such as zero-width spaces."""
    return all(c.isspace() or unicodedata.category(c) == "Cf" for c in text)


def _absent(row: dict, col: str) -> str:
    return "null (no value)" if col in row else "missing"


def _text(row: dict, col: str, where: str, optional: bool = False) -> str:
    value = row.get(col)
    if value is None:
        if optional:
            return ""
        raise RowError(f"{where}: field {col!r} is {_absent(row, col)}")
    if not isinstance(value, str):
        raise RowError(f"{where}: field {col!r} is a {type(value).__name__} ({str(value)[:40]}), not text")
    if blank(value) and not optional:
        invisible = "" if not value.strip() else " (only invisible characters, such as zero-width spaces)"
        raise RowError(f"{where}: field {col!r} is empty{invisible}")
    return value


def _messages(row: dict, col: str, where: str) -> list[dict]:
    value = row.get(col)
    if value is None:
        raise RowError(f"{where}: field {col!r} is {_absent(row, col)}")
    if not isinstance(value, list) or not value:
        raise RowError(f"{where}: field {col!r} must be a non-empty list of turns, found {type(value).__name__}")
    turns = []
    for i, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise RowError(f"{where}: turn {i} of {col!r} is a {type(turn).__name__}, not an object")
        role = turn.get("role", turn.get("from"))
        content = turn.get("content", turn.get("value"))
        if not isinstance(role, str) or role.lower() not in ROLES:
            raise RowError(f"{where}: turn {i} has role {role!r}; use one of user, assistant, system (or human, gpt)")
        if not isinstance(content, str) or blank(content):
            raise RowError(f"{where}: turn {i} has {'empty' if isinstance(content, str) else 'no'} text content")
        turns.append({"role": ROLES[role.lower()], "content": content})
    if not any(t["role"] == "assistant" for t in turns):
        raise RowError(f"{where}: the conversation has no assistant turn, so there is nothing to learn")
    return turns


def canonical_row(record: Record, layout: Layout) -> dict:
    """One raw record in the canonical shape (plus metadata columns); raises RowError when it doesn't fit."""
    row, where, f = record.data, record.where, layout.fields
    if layout.kind == "messages":
        out = {"messages": _messages(row, f["messages"], where)}
    elif layout.kind == "text":
        out = {"text": _text(row, f["text"], where)}
    elif "instruction" in f:
        instruction = _text(row, f["instruction"], where)
        extra = _text(row, f["input"], where, optional=True) if "input" in f else ""
        out = {"prompt": instruction + ("\n\n" + extra if extra.strip() else ""),
               "completion": _text(row, f["completion"], where)}
    else:
        out = {"prompt": _text(row, f["prompt"], where), "completion": _text(row, f["completion"], where)}
    used = set(f.values())
    for key in METADATA:
        if key in row and key not in used and key not in out and row[key] is not None:
            out[key] = row[key] if isinstance(row[key], str) else str(row[key])
    return out


def canonical_rows(records: list[Record], layout: Layout, *, skip_bad_rows: bool = False,
                   source: str = "data") -> tuple[list[dict], list[str]]:
    """All records in canonical shape; bad rows raise one clear error, or are skipped and listed."""
    rows, skipped = [], []
    for rec in records:
        try:
            rows.append(canonical_row(rec, layout))
        except RowError as e:
            why, own = str(e), _row_layout(rec.data)
            mixed = own is not None and own.name != layout.name and not layout.name.startswith("custom")
            if mixed:
                why += (f": this row has the columns of layout {own.name}, not {layout.name} like the rest of the "
                        "data; keep one layout per file")
            if not skip_bad_rows:
                raise CourseError(f"{why}{'' if mixed else f' (layout {layout.name})'}. Fix the row, or {SKIP_HINT}."
                                  ) from None
            skipped.append(why)
    if not rows:
        raise CourseError(f"{source}: no usable rows ({len(skipped)} skipped, e.g. {skipped[:1]}).")
    # Metadata columns must be present in every row for a table: fill the gaps with "".
    keys = {k for r in rows for k in r}
    for r in rows:
        for k in keys - r.keys():
            r[k] = ""
    return rows, skipped


def columns_of(records: list[Record], sample: int | None = 50) -> list[str]:
    """The union of keys over the first `sample` rows (None: all rows)."""
    seen: dict = {}
    for rec in records[:sample]:
        seen.update(dict.fromkeys(rec.data))
    return list(seen)
