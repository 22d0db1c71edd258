"""`python -m llmcourse data inspect|convert`: look at a data set before training on it, or rewrite it canonically."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from llmcourse.core.errors import CourseError
from llmcourse.core.paths import BUNDLED

FORMATS = ("jsonl", "json", "csv", "parquet")


def add_arguments(parser) -> None:
    """Sub-commands `inspect` and `convert`, with the loading options both share."""
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    inspect = sub.add_parser("inspect", help="layout, rows, token lengths, truncation, duplicates",
                             description="Show what llmcourse reads from a data set and how it tokenizes.")
    convert = sub.add_parser("convert", help="rewrite a data set in the canonical shape (prompt/completion, ...)",
                             description="Rewrite a data set in the canonical columns, one file, with a split column.")
    for p in (inspect, convert):
        p.add_argument("path", help="a .jsonl/.json/.csv/.parquet file, a folder, or 'kettlebird' (the shipped set)")
        p.add_argument("--fields", help="which columns to use, e.g. prompt=q,completion=a (for unknown layouts)")
        p.add_argument("--skip-bad-rows", action="store_true", help=(
            "bad rows are listed either way; with this flag they do not make the exit status 1" if p is inspect else
            "skip broken rows and count them instead of stopping"))
        p.add_argument("--encoding", default="utf-8", help="text encoding of the file (default utf-8)")
    inspect.add_argument("--template", default="chat", help="chat (default), alpaca, qa, or your own with {prompt}")
    inspect.add_argument("--max-length", type=int, default=256, help="token budget per example (default 256)")
    inspect.add_argument("--model", default=BUNDLED, help="whose tokenizer counts the tokens")
    inspect.add_argument("--no-tokens", action="store_true", help="skip tokenizing (no model needed)")
    convert.add_argument("--to", choices=FORMATS, default="jsonl", help="output format (default jsonl)")
    convert.add_argument("--out", help="output file (default: NAME.FORMAT in the current folder)")
    convert.add_argument("--force", action="store_true", help="overwrite the output file if it exists")


def run(args) -> int:
    return {"inspect": inspect, "convert": convert}[args.data_command](args)


def _load(args, skip_bad_rows: bool, **options):
    from llmcourse.data.loading import load_instruction_data

    return load_instruction_data(args.path, fields=args.fields, skip_bad_rows=skip_bad_rows, encoding=args.encoding,
                                 verbose=True, **options)


def text_histogram(values: list[int], bins: int = 10, width: int = 40, limit: int | None = None) -> str:
    """A histogram drawn with block characters, one line per bin; bins past `limit` are marked with '!'."""
    lo, hi = min(values), max(values)
    bins = min(bins, hi - lo + 1)
    step = max(1, -(-(hi - lo + 1) // bins))
    counts = [0] * bins
    for v in values:
        counts[min((v - lo) // step, bins - 1)] += 1
    top = max(counts)
    lines = []
    for i, n in enumerate(counts):
        a, b = lo + i * step, lo + (i + 1) * step - 1
        mark = "!" if limit is not None and b > limit else " "
        lines.append(f"{a:>6}–{b:<6}{mark}{'█' * round(width * n / top) if n else '':<{width}} {n}")
    return "\n".join(lines)


def inspect(args) -> int:
    """Print the layout, every bad row, then for the good rows an example, token lengths + histogram, truncation and
    duplicates; exit 1 when there were bad rows (a diagnosis reads the whole file, it does not stop at the first)."""
    from llmcourse.cli.shared import check_positive
    from llmcourse.data.checks import check_data

    check_positive(args, "max_length")
    dd = _load(args, skip_bad_rows=True)
    first = next(iter(dd.values()))
    print(f"columns: {', '.join(first.column_names)}")
    bad = dd.skipped
    if bad:
        print(f"\n{len(bad)} bad rows:")
        for msg in bad:
            print(f"  {msg}")
        print()
    example = {k: v for k, v in first[0].items() if k in ("prompt", "completion", "messages", "text")}
    print(f"first row: {json.dumps(example, ensure_ascii=False)[:300]}")
    if not args.no_tokens:
        _token_stats(dd, args)
    print("\nduplicates and overlap (questions compared after lowercasing and dropping punctuation):")
    check_data(dd)
    if bad:
        print(f"\n{len(bad)} bad rows (listed above; the statistics are of the good rows). Fix them, or pass "
              "--skip-bad-rows to train, eval and convert to skip them.")
    return 1 if bad and not args.skip_bad_rows else 0


def _token_stats(dd, args) -> None:
    import datasets

    from llmcourse.models.loading import load_model
    from llmcourse.data.tokenization import tokenize_dataset

    _, tok = load_model(args.model)
    allrows = datasets.concatenate_datasets(list(dd.values()))
    ds = tokenize_dataset(allrows, tok, template=args.template, max_length=args.max_length, verbose=False)
    rep = ds.tokenization_report
    lengths = rep.lengths if "text" not in allrows.column_names else [  # tokens per page
        len(tok(t, add_special_tokens=False)["input_ids"]) for t in allrows["text"]]
    q = statistics.quantiles(lengths, n=20, method="inclusive") if len(lengths) > 1 else lengths * 19
    print(f"\ntoken lengths ({args.model} tokenizer, template {args.template!r}, all {len(lengths)} rows): "
          f"min {min(lengths)} · median {statistics.median(lengths):.0f} · mean {statistics.mean(lengths):.1f} · "
          f"95% {q[18]:.0f} · max {max(lengths)}")
    is_text = "text" in allrows.column_names
    print(text_histogram(lengths, limit=None if is_text else args.max_length))
    if is_text:
        print(f"as text: {rep.lengths[0]:,} tokens -> {rep.blocks} blocks of up to {args.max_length}")
    else:
        print(f"max_length {args.max_length}: {rep.truncated} rows truncated (prompt cut from the left), "
              f"{rep.answer_cut} with the answer cut" + ("  ('!' bins are over the limit)" if rep.truncated else ""))


def _rows(dd) -> list[dict]:
    several = list(dd) != ["train"]
    return [dict(r, split=name) if several else dict(r) for name, d in dd.items() for r in d]


def convert(args) -> int:
    """Write the canonical rows (with a `split` column when there are several splits) as jsonl/json/csv/parquet."""
    from llmcourse.data.loading import SHIPPED

    src = Path(args.path)
    out = Path(args.out) if args.out else Path(f"{src.stem}.{args.to}")
    if out.is_dir():
        raise CourseError(f"--out {out} is a folder; give a file name, e.g. --out {out / f'{src.stem}.{args.to}'}.")
    if not out.parent.is_dir():
        raise CourseError(f"--out {out}: the folder {out.parent} {'is a file' if out.parent.exists() else 'does not exist'}"
                          "; create the folder first, or pick another --out.")
    if out.exists() and out.resolve() == src.resolve():
        raise CourseError(f"{out} is the input file; pass --out to write somewhere else.")
    if out.exists() and not args.force:
        raise CourseError(f"{out} exists; pass --force to overwrite it or --out to pick another name.")
    own_splits = {} if args.path == SHIPPED else {"validation": 0}  # the data's own splits, none added
    dd = _load(args, skip_bad_rows=args.skip_bad_rows, **own_splits)
    rows = _rows(dd)
    if args.to == "jsonl":
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    elif args.to == "json":
        out.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    elif args.to == "csv":
        import csv

        if any(isinstance(v, list) for v in rows[0].values()):
            raise CourseError("Conversations (messages) don't fit in CSV columns; use --to jsonl or --to parquet.")
        with out.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), out)
    print(f"wrote {len(rows)} rows to {out}")
    return 0
