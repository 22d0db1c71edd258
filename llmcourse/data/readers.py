"""Reading raw records from files (.jsonl, .json, .csv, .parquet, folders), with line-numbered errors."""
from __future__ import annotations

import codecs
import csv
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from llmcourse.core.errors import CourseError

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
SKIP_HINT = "pass skip_bad_rows=True (CLI: --skip-bad-rows) to skip such rows and count them"
# A long answer is data, not an error: lift the csv module's 128 KB field limit (a C long on Windows).
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class Record:
    """One raw row and where it came from (for error messages): e.g. 'qa.jsonl, line 3'."""
    data: dict
    where: str


@dataclass
class ReadResult:
    """The rows read from a source, plus the bad rows skipped (each as 'where: why')."""
    records: list[Record] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """A file's text, with a clear message when it is empty or not in the expected encoding (UTF-16 included)."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise CourseError(f"encoding {encoding!r} is not one Python knows (reading {path}). Use utf-8 (the default), "
                          "latin-1, cp1252 or utf-16.") from None
    raw = path.read_bytes()
    if not raw.strip():
        raise CourseError(f"{path} is empty: there are no rows to read. Check that you picked the right file.")
    utf8 = codecs.lookup(encoding).name == "utf-8"
    if utf8 and (raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in raw[:4096]):
        how = "starts with a UTF-16 byte order mark" if raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else \
            "holds NUL bytes"
        raise CourseError(f"{path} is not UTF-8: it {how}, so it is probably UTF-16 (Windows 'Unicode'). "
                          "Re-save it as UTF-8, or pass encoding='utf-16' (CLI: --encoding utf-16).")
    try:
        return raw.decode("utf-8-sig" if utf8 else encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        hint = ("(the file is probably Latin-1 or Windows-1252). Re-save it as UTF-8, or pass encoding='latin-1' "
                "(CLI: --encoding latin-1)." if utf8 else "Check which encoding the file was saved in.")
        raise CourseError(f"{path}, line {line}: byte 0x{raw[e.start]:02x} is not valid {encoding} {hint}") from None


class _Duplicates(dict):
    """A JSON object that repeated a key (json keeps the last value silently); `.keys_repeated` names them."""
    keys_repeated: list


def _object(pairs) -> dict:
    """json's object_pairs_hook: a dict, marked when it (or an object inside it) repeats a key."""
    obj = dict(pairs)
    repeated = [k for i, (k, _) in enumerate(pairs) if any(k == k2 for k2, _ in pairs[:i])]
    for v in obj.values():
        for inner in v if isinstance(v, list) else [v]:
            repeated += getattr(inner, "keys_repeated", [])
    if not repeated:
        return obj
    marked = _Duplicates(obj)
    marked.keys_repeated = repeated
    return marked


class _BadJSON(Exception):
    """Text json cannot (or should not) read; `line` is where, when known."""
    def __init__(self, why: str, line: int | None = None):
        super().__init__(why)
        self.line = line


def _parse_json(text: str):
    """json.loads with every failure as _BadJSON: a syntax error (with its line), or nesting too deep for Python."""
    try:
        return json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as e:  # some messages end in "at" ("Unterminated string starting at")
        raise _BadJSON(f"not valid JSON ({e.msg.removesuffix(' at')} at column {e.colno})", e.lineno) from None
    except RecursionError:
        raise _BadJSON("JSON nested deeper than Python can read (over ~1000 levels of [ or {)") from None


def _row_problem(obj) -> str | None:
    """Why a parsed row is not a usable object, or None."""
    if not isinstance(obj, dict):
        return f"a JSON {type(obj).__name__}, not an object {{...}}"
    if getattr(obj, "keys_repeated", None):
        return f"key {obj.keys_repeated[0]!r} appears twice in one object (JSON keeps only the last); keep one"
    return None


def _bad_row(out: ReadResult, path: Path, at: str, why: str, skip_bad_rows: bool) -> None:
    """Skip a bad row (listed as 'file, line n: why') or stop with one line naming file and line and what to do."""
    if not skip_bad_rows:
        raise CourseError(f"{path}, {at}: {why}. Fix it, or {SKIP_HINT}.")
    out.skipped.append(f"{path.name}, {at}: {why}")


def read_jsonl(path: Path, *, skip_bad_rows: bool = False, encoding: str = "utf-8") -> ReadResult:
    """One JSON object per line; blank lines are ignored; a broken line names its file and line number."""
    out = ReadResult()
    for n, line in enumerate(read_text(path, encoding).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = _parse_json(line)
        except _BadJSON as e:
            _bad_row(out, path, f"line {n}", str(e), skip_bad_rows)
            continue
        why = _row_problem(obj)
        if why:
            _bad_row(out, path, f"line {n}", why + ('; each line must be like {"question": ..., "answer": ...}'
                                                    if not isinstance(obj, dict) else ""), skip_bad_rows)
            continue
        out.records.append(Record(obj, f"{path.name}, line {n}"))
    return out


def read_json(path: Path, *, skip_bad_rows: bool = False, encoding: str = "utf-8") -> ReadResult:
    """A JSON array of objects (Alpaca style), or an object holding such an array (e.g. {"data": [...]})."""
    text = read_text(path, encoding)
    try:
        obj = _parse_json(text)
    except _BadJSON as e:
        if text.lstrip().startswith("{") and "\n{" in text.strip():  # JSON Lines saved as .json
            return read_jsonl(path, skip_bad_rows=skip_bad_rows, encoding=encoding)
        raise CourseError(f"{path}{f', line {e.line}' if e.line else ''}: {e}. A .json file must be one JSON array "
                          "of rows [{...}, ...]; fix the file, or save one row per line as .jsonl.") from None
    if isinstance(obj, dict):
        lists = [k for k, v in obj.items() if isinstance(v, list)]
        if len(lists) != 1:
            raise CourseError(f"{path}: expected a JSON array of rows [{{...}}, ...] (or an object with one list in it); "
                              f"found an object with keys {sorted(obj)[:8]}.")
        obj = obj[lists[0]]
    if not isinstance(obj, list):
        raise CourseError(f"{path}: expected a JSON array of rows [{{...}}, ...], found a {type(obj).__name__}.")
    if not obj:
        raise CourseError(f"{path} holds an empty array: there are no rows to read.")
    out = ReadResult()
    for i, row in enumerate(obj, start=1):
        why = _row_problem(row)
        if why:
            _bad_row(out, path, f"item {i}", why, skip_bad_rows)
        else:
            out.records.append(Record(row, f"{path.name}, item {i}"))
    return out


def _delimiter(first_line: str) -> str:
    """',' unless the header has none and uses ';' or a tab instead (spreadsheets in many locales save with ';')."""
    if "," in first_line:
        return ","
    return max(";\t|", key=first_line.count) if any(d in first_line for d in ";\t|") else ","


def read_csv(path: Path, *, skip_bad_rows: bool = False, encoding: str = "utf-8") -> ReadResult:
    """A CSV file with a header row (',', or ';'/tab when the header uses that); every value is read as text."""
    text = read_text(path, encoding)
    delimiter = _delimiter(text.lstrip("\r\n").split("\n", 1)[0])
    # strict: a quote that opens a field and is not closed where the field ends is an error, not merged rows
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    out = ReadResult()
    start = 1  # the line the row being read began on (a quoted field may span lines)
    try:
        header = next((h for h in reader if any(c.strip() for c in h)), None)
        start = reader.line_num + 1
        if header is None:
            raise CourseError(f"{path} has no header row with column names (and no rows).")
        repeated = [c for i, c in enumerate(header) if c in header[:i]]
        if repeated:
            raise CourseError(f"{path}, line {reader.line_num}: column {repeated[0]!r} appears twice in the header; "
                              "rename one.")
        for values in reader:
            n, start = reader.line_num, reader.line_num + 1
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                _bad_row(out, path, f"line {n}", f"{len(values)} values for {len(header)} columns {header} "
                         f"(separated by {delimiter!r}); a field holding {delimiter!r}, a quote or a newline must be "
                         "in double quotes", skip_bad_rows)
                continue
            out.records.append(Record(dict(zip(header, values)), f"{path.name}, line {n}"))
    except csv.Error as e:
        if start < reader.line_num or "quote" in str(e) or "expected after" in str(e):
            raise CourseError(f"{path}, line {start}: a double quote opened in this row is not closed where its field "
                              f"ends (the csv reader gave up at line {reader.line_num}: {e}). Wrap a field holding "
                              'quotes in double quotes and double each quote inside it, "like ""this""".') from None
        raise CourseError(f"{path}, line {reader.line_num}: not valid CSV ({e}).") from None
    return out


def read_parquet(path: Path, **_) -> ReadResult:
    """A Parquet table (missing values become None)."""
    import pyarrow.parquet as pq

    rows = pq.read_table(path).to_pylist()
    if not rows:
        raise CourseError(f"{path} has no rows.")
    return ReadResult([Record(r, f"{path.name}, row {i}") for i, r in enumerate(rows, start=1)])


READERS = {".jsonl": read_jsonl, ".json": read_json, ".csv": read_csv, ".parquet": read_parquet}


def read_file(path: Path, *, skip_bad_rows: bool = False, encoding: str = "utf-8") -> ReadResult:
    """Read one file by its suffix into raw records."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise CourseError(f"{path}: unknown file type {path.suffix!r}; use one of {', '.join(SUFFIXES)}.")
    return reader(path, skip_bad_rows=skip_bad_rows, encoding=encoding)


def data_files(folder: Path) -> list[Path]:
    """The readable data files in a folder (not recursive), sorted by name."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise CourseError(f"{folder} holds no data files ({', '.join(SUFFIXES)}).")
    return files
