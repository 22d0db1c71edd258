"""The `eval` command: answer the held-out questions with a model or run, print the metrics, save a report.

    python -m llmcourse eval --model smollm2-135m-instruct --split test --limit 100
    python -m llmcourse eval --model runs/my-run --split test,unseen
"""
from __future__ import annotations

import re
from pathlib import Path


def add_arguments(p):
    p.add_argument("--model", default="smollm2-135m-instruct",
                   help="bundled name, 'tiny-random', a run (runs/<name> or just <name>), a model folder, or a hub id")
    p.add_argument("--data", default="kettlebird", help="'kettlebird' (shipped) or a .jsonl/.csv file with question/answer columns")
    p.add_argument("--split", default="test", help="split(s) to ask, comma-separated: test, unseen, validation, ...")
    p.add_argument("--limit", type=int, default=None, help="ask at most N questions per split (a fixed random sample)")
    p.add_argument("--max-new-tokens", type=int, default=48, help="longest answer, in tokens")
    p.add_argument("--batch-size", type=int, default=None,
                   help="questions answered together (left-padded batches); default: from the model's size, 64 "
                        "for the bundled model")
    p.add_argument("--retrieval", action="store_true", help="put the best-matching docs passages in each prompt (RAG)")
    p.add_argument("--template", default=None, help="prompt format: chat, qa, alpaca (default: the run's, else chat)")
    p.add_argument("--no-loss", action="store_true", help="skip the answer loss / perplexity of the reference answers")
    p.add_argument("--out", default=None, help="report folder (default: <run>/eval/<split> for a run, else runs/eval/<model>/<split>)")


def resolve_model(name: str):
    """(what load_model gets, the saved Run or None) for a --model value: a run by folder, name or name prefix
    (the newest match); anything else (a model name, folder or hub id) goes to load_model as it is."""
    from .errors import CourseError
    from .models import BUNDLED
    from .runs import find_run, is_run, load_run

    if name in (BUNDLED, "tiny-random") or (Path(name).expanduser().exists() and not is_run(Path(name).expanduser())):
        return name, None
    try:
        path = find_run(name)
    except CourseError:
        return name, None
    return str(path), load_run(path)


def run(args) -> int:
    from .errors import CourseError
    from .evaluate import evaluate_model
    from .runs import runs_dir

    if args.limit is not None and args.limit < 1:
        raise CourseError(f"--limit {args.limit}: ask for at least 1 question per split.")
    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    target, saved = resolve_model(args.model)
    template = args.template or (saved.config.template if saved else "chat")
    label = "+".join(splits) + ("-retrieval" if args.retrieval else "")
    out = Path(args.out) if args.out else (saved.path / "eval" / label if saved else
                                           runs_dir() / "eval" / re.sub(r"[^\w.-]+", "_", args.model).strip("_") / label)
    print(f"Evaluating {args.model} on {args.data} [{', '.join(splits)}]"
          f"{f', {args.limit} questions per split' if args.limit else ''}{' with retrieval' if args.retrieval else ''} ...",
          flush=True)
    result = evaluate_model(target, args.data, splits=splits, limit=args.limit, name=args.model, retrieval=args.retrieval,
                            loss=not args.no_loss, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                            template=template)
    print(result.summary.to_string(float_format=lambda v: f"{v:.3f}"))
    path = result.save(out)
    n = len(result.table)
    print(f"{n} questions answered in {result.seconds:.1f} s ({result.seconds / max(n, 1):.2f} s per question). Report: {path}")
    return 0
