"""Loading instruction data from anywhere into one canonical `datasets` shape, and splitting it."""
from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from pathlib import Path

from llmcourse.core.errors import CourseError
from llmcourse.data.pages import read_pages
from llmcourse.core.hub import is_hub_id, looks_like_path, missing_path
from llmcourse.data.layouts import canonical_rows, layout_of
from llmcourse.data.readers import ReadResult, Record, data_files, read_file
from llmcourse.data.checks import duplicate_groups, find_overlap

SHIPPED = "kettlebird"
SPLIT_ORDER = ("train", "validation", "test", "unseen")
SHIPPED_SEED = 0  # the shipped set's validation split is fixed, so every run on it is scored on the same rows
VALIDATION_CAP = 200  # most rows held out as validation from data without one, so evaluating stays cheap
VALIDATION_MIN_ROWS = 10  # fewer train rows than this (a demo, a handful of examples): nothing is held out
GROUP_COLUMN = "fact_id"  # rows of one fact (paraphrases): held out as the shipped set is, one per fact


def shipped_dir() -> Path:
    """The folder of the course's own data set (questions in qa.jsonl, pages in docs/)."""
    return Path(__file__).resolve().parent.parent / "datasets" / SHIPPED


def load_instruction_data(source=SHIPPED, *, split: str | None = None, fields=None, skip_bad_rows: bool = False,
                          encoding: str = "utf-8", validation: float = 0.1, seed: int = 42, verbose: bool = True):
    """Any instruction data -> a DatasetDict (or the one `split`) with `prompt`/`completion`, `messages` or `text`.

    source: "kettlebird" (the shipped set), "kettlebird-docs" (its pages as text), a .jsonl/.json/.csv/.parquet
    file, a folder of them (one split per file, named by the file), a list of dicts, a pandas DataFrame,
    or a Hugging Face hub name when online. The layout is detected from the column names; `fields`
    overrides it (e.g. {"prompt": "q", "completion": "a"}). Rows with a `split` column are split by it.
    Data without a validation split gets one: `validation` is the share of train rows held out, seeded by `seed`
    (see hold_out_validation); 0 keeps every row in train. The shipped set's validation split is fixed (seed 0),
    at most one row per fact, so every fact keeps training rows.
    """
    if not 0 <= validation < 1:
        raise CourseError(f"validation={validation!r}: give the share of training rows to hold out, from 0 (none) "
                          "to below 1, e.g. 0.1.")
    skipped: list[str] = []
    held = ""
    if isinstance(source, str) and source == f"{SHIPPED}-docs":
        dd = load_text_data(verbose=False)
        layout = "text (docs pages)"
    elif isinstance(source, str) and source == SHIPPED:
        path = shipped_dir() / "qa.jsonl"
        if not path.is_file():
            raise CourseError(f"The shipped data set is missing ({path}). Reinstall llmcourse from the repository.")
        dd, layout, skipped = _from_records({"all": read_file(path, encoding=encoding)}, fields, skip_bad_rows, path.name)
        dd = add_validation_split(_drop_split_column(dd), fraction=validation, seed=SHIPPED_SEED, group_by=GROUP_COLUMN)
    else:
        dd, layout, skipped = _load_any(source, fields, skip_bad_rows, encoding)
        dd, held = hold_out_validation(_drop_split_column(dd), fraction=validation, seed=seed)
    if verbose:
        sizes = " · ".join(f"{len(d)} {name}" for name, d in dd.items())
        note = f", {len(skipped)} bad rows skipped" if skipped else ""
        print(f"{_name(source)}: layout {layout}; {sizes} rows{note}" + (f"; {held}" if held else ""))
    dd.layout = layout
    dd.skipped = skipped
    if split is None:
        return dd
    if split not in dd:
        raise CourseError(f"No split {split!r} in {_name(source)}; it has {list(dd)}.")
    return dd[split]


def load_text_data(source=None, *, verbose: bool = True):
    """Plain pages as a DatasetDict {"train": Dataset(text, source, id)}: the shipped docs by default, or a folder of .md/.txt."""
    import datasets

    folder = Path(source) if source is not None else shipped_dir() / "docs"
    pages = read_pages(folder)
    rows = {"id": [Path(name).stem for name, _ in pages], "source": [name for name, _ in pages],
            "text": [text.strip() for _, text in pages]}
    if verbose:
        print(f"{folder.name}: {len(pages)} pages, {sum(len(t) for t in rows['text']):,} characters")
    dd = datasets.DatasetDict(train=datasets.Dataset.from_dict(rows))
    dd.layout = "text"
    return dd


def _name(source) -> str:
    if isinstance(source, (str, Path)):
        return Path(source).name if Path(str(source)).exists() else str(source)
    return type(source).__name__


def _load_any(source, fields, skip_bad_rows, encoding):
    import datasets

    if isinstance(source, (datasets.Dataset, datasets.DatasetDict)):
        parts = source if isinstance(source, datasets.DatasetDict) else {"all": source}
        groups = {k: ReadResult([Record(r, f"row {i + 1}") for i, r in enumerate(d)]) for k, d in parts.items()}
        return _from_records(groups, fields, skip_bad_rows, "dataset")
    if type(source).__name__ == "DataFrame":
        source = source.to_dict("records")
    if isinstance(source, list):
        if not source:
            raise CourseError("The list of rows is empty.")
        bad = next((i for i, r in enumerate(source) if not isinstance(r, dict)), None)
        if bad is not None:
            raise CourseError(f"row {bad + 1} of the list is a {type(source[bad]).__name__}, not a dict.")
        return _from_records({"all": ReadResult([Record(r, f"row {i + 1}") for i, r in enumerate(source)])},
                             fields, skip_bad_rows, "list")
    if not isinstance(source, (str, Path)):
        raise CourseError(f"Cannot read instruction data from a {type(source).__name__}; pass a path, a name, "
                          "a list of dicts or a DataFrame.")
    path = Path(source).expanduser()
    if path.exists() and not path.is_file() and not path.is_dir():
        raise CourseError(f"{path} is not a regular file (a pipe, a device or a socket): give the path of a data file "
                          "(.jsonl, .json, .csv, .parquet) or a folder of them.")
    if path.is_file():
        return _from_records({"all": read_file(path, skip_bad_rows=skip_bad_rows, encoding=encoding)},
                             fields, skip_bad_rows, path.name)
    if path.is_dir():
        groups = {p.stem: read_file(p, skip_bad_rows=skip_bad_rows, encoding=encoding) for p in data_files(path)}
        return _from_records(groups, fields, skip_bad_rows, path.name)
    if is_hub_id(source):
        return _load_any(_load_hub(source), fields, skip_bad_rows, encoding)
    if looks_like_path(source):
        raise missing_path(source)
    raise CourseError(f"{source!r} is not a file, a folder, nor the shipped set {SHIPPED!r}. Check the path.")


def _load_hub(name: str):
    import datasets

    try:
        return datasets.load_dataset(name)
    except Exception as e:  # offline, unknown name, gated: all a user can fix by a local file
        raise CourseError(f"Could not load {name!r} from the Hugging Face hub ({type(e).__name__}: {str(e)[:160]}). "
                          "Offline? Download it once as .jsonl and pass the file instead.") from None


def _from_records(groups: dict, fields, skip_bad_rows, source: str):
    """{group: ReadResult} -> (DatasetDict, layout name, skipped rows); the `split` column or group names give splits."""
    import datasets

    records = [r for g in groups.values() for r in g.records]
    skipped = [s for g in groups.values() for s in g.skipped]
    if not records:
        raise CourseError(f"{source}: no rows could be read ({len(skipped)} bad, the first: {skipped[:1]}).")
    layout = layout_of(records, fields, source)
    splits: dict[str, list] = defaultdict(list)
    for group, res in groups.items():
        rows, bad = canonical_rows(res.records, layout, skip_bad_rows=skip_bad_rows, source=source)
        skipped += bad
        for row in rows:
            name = row.get("split") or ("train" if group == "all" else group)
            splits[name].append(row)
    order = sorted(splits, key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else 9, s))
    dd = datasets.DatasetDict({s: datasets.Dataset.from_list(splits[s]) for s in order})
    return dd, layout.name, sorted(skipped, key=_file_and_line)


def _file_and_line(where: str) -> tuple:
    """'qa.jsonl, line 12: why' -> ('qa.jsonl', 12): bad rows listed in file order, whichever check found them."""
    found = re.match(r"(.*?), (?:line|item|row) (\d+)", where)
    return (found[1], int(found[2])) if found else (where, 0)


def _drop_split_column(dd):
    import datasets

    return datasets.DatasetDict({k: d.remove_columns("split") if "split" in d.column_names else d for k, d in dd.items()})


def add_validation_split(dd, *, fraction: float = 0.1, seed: int = 0, group_by: str | None = "fact_id"):
    """Move `fraction` of the train rows to a new `validation` split, at most one row per group so each group keeps train rows."""
    if "validation" in dd or fraction <= 0 or "train" not in dd:
        return dd
    train = dd["train"]
    n_val = max(1, round(fraction * len(train)))
    rng = random.Random(seed)
    if group_by and group_by in train.column_names:
        groups: dict = defaultdict(list)
        for i, g in enumerate(train[group_by]):
            groups[g].append(i)
        eligible = [g for g in groups if len(groups[g]) > 1]  # never take a group's only training row
        chosen = rng.sample(sorted(eligible), min(n_val, len(eligible)))
        val_idx = sorted(rng.choice(groups[g]) for g in chosen)
    else:
        val_idx = sorted(rng.sample(range(len(train)), n_val))
    return _move_to_validation(dd, val_idx)


def hold_out_validation(dd, *, fraction: float = 0.1, seed: int = 42, cap: int = VALIDATION_CAP):
    """(dd with `fraction` of its train rows moved to a seeded `validation` split, a line saying so); as is if it has one.

    1 to `cap` rows, from VALIDATION_MIN_ROWS train rows up. Exact and near-duplicate questions move together or not at all,
    so validation does not score a question that was trained on; with a fact_id column at most one such group per
    fact moves and every fact keeps training rows, as in the shipped set. Only where near-duplicates chain into
    groups too big to move (templated questions) are they split apart, exact duplicates never; the line says so.
    """
    if "validation" in dd or "train" not in dd or fraction <= 0:
        return dd, ""
    train = dd["train"]
    n = len(train)
    if n < VALIDATION_MIN_ROWS:
        return dd, f"too few rows ({n}) to hold out a validation split"
    target = min(cap, max(1, round(fraction * n)))
    facts = list(train[GROUP_COLUMN]) if GROUP_COLUMN in train.column_names else None
    per_fact, used, held = Counter(facts or []), set(), []
    rng = random.Random(seed)
    for near in (True, False):
        taken = set(held)
        groups = [g for g in duplicate_groups(train, near=near) if not taken & set(g)]
        rng.shuffle(groups)
        for group in groups:
            if len(held) + len(group) > target:
                continue
            if facts is not None:
                counts = Counter(facts[i] for i in group)
                if any(f in used or per_fact[f] == k for f, k in counts.items()):
                    continue
                used |= set(counts)
            held += group
        if len(held) == target:
            break
    if not held:
        return dd, "no validation split held out: every question has a duplicate"
    out = _move_to_validation(dd, sorted(held))
    line = f"held out {len(held)} of {n} rows ({fraction * 100:g}%, seed {seed}) as validation"
    near_train = len({i for i, _, _ in find_overlap(out["train"], out["validation"]).near})
    if near_train:
        line += (f" ({near_train} of them have a near-duplicate question in train: templated questions? "
                 "`python -m llmcourse data inspect` lists them)")
    return out, line


def _move_to_validation(dd, val_idx: list[int]):
    """dd with these train rows moved to a new `validation` split, the splits in the usual order."""
    import datasets

    train = dd["train"]
    keep = sorted(set(range(len(train))) - set(val_idx))
    out = {"train": train.select(keep), "validation": train.select(val_idx)}
    out.update({k: v for k, v in dd.items() if k != "train"})
    return datasets.DatasetDict({k: out[k] for k in sorted(out, key=lambda s: (SPLIT_ORDER.index(s) if s in SPLIT_ORDER else 9, s))})


def split_dataset(ds, *, validation: float = 0.1, test: float = 0.1, seed: int = 0, group_by: str | None = None):
    """One Dataset -> DatasetDict(train, validation, test) with a seed; rows sharing `group_by` stay in one split."""
    import datasets

    if isinstance(ds, datasets.DatasetDict):
        if list(ds) != ["train"]:
            return ds
        ds = ds["train"]
    keys = ds[group_by] if group_by and group_by in ds.column_names else list(range(len(ds)))
    uniq = sorted(set(keys), key=str)
    random.Random(seed).shuffle(uniq)
    n_test, n_val = round(test * len(uniq)), round(validation * len(uniq))
    if len(uniq) - n_test - n_val < 1:
        raise CourseError(f"{len(ds)} rows are too few to split into train/validation/test ({validation}, {test}).")
    where = {k: "test" for k in uniq[:n_test]} | {k: "validation" for k in uniq[n_test:n_test + n_val]}
    idx = defaultdict(list)
    for i, k in enumerate(keys):
        idx[where.get(k, "train")].append(i)
    return datasets.DatasetDict({s: ds.select(idx[s]) for s in ("train", "validation", "test") if idx[s] or s == "train"})
