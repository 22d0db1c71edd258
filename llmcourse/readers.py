"""Reading raw records from files (.jsonl, .json, .csv, .parquet, folders), with line-numbered errors."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CourseError

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


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
    """A file's text, with a clear message when it is empty or not in the expected encoding."""
    raw = path.read_bytes()
    if not raw.strip():
        raise CourseError(f"{path} is empty: there are no rows to read. Check that you picked the right file.")
    try:
        return raw.decode("utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise CourseError(
            f"{path}, line {line}: byte 0x{raw[e.start]:02x} is not valid {encoding} (the file is probably Latin-1 or "
            f"Windows-1252). Re-save it as UTF-8, or pass encoding='latin-1' (CLI: --encoding latin-1).") from None


def read_jsonl(path: Path, *, skip_bad_rows: bool = False, encoding: str = "utf-8") -> ReadResult:
    """One JSON object per line; blank lines are ignored; a broken line names its file and line number."""
    out = ReadResult()
    for n, line in enumerate(read_text(path, encoding).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name}, line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            why = f"{where}: not valid JSON ({e.msg} at column {e.colno})"
            if skip_bad_rows:
                out.skipped.append(why)
                continue
            raise CourseError(f"{path}, line {n}: not valid JSON ({e.msg} at column {e.colno}). Fix that line, or pass "
                              f"skip_bad_rows=True (CLI: --skip-bad-rows) to skip broken lines and count them.") from None
        if not isinstance(obj, dict):
            why = f"{where}: a JSON {type(obj).__name__}, not an object {{...}}"
            if skip_bad_rows:
                out.skipped.append(why)
                continue
            raise CourseError(f"{path}, line {n}: each line must be a JSON object like "
                              f'{{"question": ..., "answer": ...}}, found a {type(obj).__name__}.')
        out.records.append(Record(obj, where))
    return out


def read_json(path: Path, *, skip_bad_rows: bool = False, encoding: str = "utf-8") -> ReadResult:
    """A JSON array of objects (Alpaca style), or an object holding such an array (e.g. {"data": [...]})."""
    text = read_text(path, encoding)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        if text.lstrip().startswith("{") and "\n{" in text.strip():  # JSON Lines saved as .json
            return read_jsonl(path, skip_bad_rows=skip_bad_rows, encoding=encoding)
        raise CourseError(f"{path}, line {e.lineno}: not valid JSON ({e.msg} at column {e.colno}).") from None
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
        where = f"{path.name}, item {i}"
        if isinstance(row, dict):
            out.records.append(Record(row, where))
        elif skip_bad_rows:
            out.skipped.append(f"{where}: a {type(row).__name__}, not an object")
        else:
            raise CourseError(f"{path}, item {i}: each item must be an object {{...}}, found a {type(row).__name__}.")
    return out


def read_csv(path: Path, *, skip_bad_rows: bool = False, encoding: str = "utf-8") -> ReadResult:
    """A CSV file with a header row; every value is read as text (no guessing of numbers or NaN)."""
    reader = csv.reader(io.StringIO(read_text(path, encoding), newline=""))
    header = next(reader)
    out = ReadResult()
    for values in reader:
        n = reader.line_num
        if not any(v.strip() for v in values):
            continue
        where = f"{path.name}, line {n}"
        if len(values) != len(header):
            why = f"{where}: {len(values)} values for {len(header)} columns"
            if skip_bad_rows:
                out.skipped.append(why)
                continue
            raise CourseError(f"{path}, line {n}: {len(values)} values for {len(header)} columns {header}. "
                              "A field with a comma or newline must be in double quotes.")
        out.records.append(Record(dict(zip(header, values)), where))
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
