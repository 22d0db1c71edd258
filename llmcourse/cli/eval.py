"""The `eval` command: answer the held-out questions with a model or run, print the metrics, save a report.

    python -m llmcourse eval --split test --limit 100
    python -m llmcourse eval --model runs/my-run --split test,unseen
    python -m llmcourse eval --model runs/my-run --data my.jsonl --split validation   (the rows training held out)
"""
from __future__ import annotations

import re
from pathlib import Path
from llmcourse.cli.shared import resolve_model
from llmcourse.core.paths import BUNDLED


def add_arguments(p):
    p.add_argument("--model", default=BUNDLED,
                   help="bundled name, 'tiny-random', a run (runs/<name> or just <name>), a model folder, or a hub id")
    p.add_argument("--data", default=None,
                   help="'kettlebird' (shipped) or a .jsonl/.csv file with question/answer columns (default: the "
                        "run's data, else kettlebird); --split validation asks the rows the run held out")
    p.add_argument("--split", default="test", help="split(s) to ask, comma-separated: test, unseen, validation, ...")
    p.add_argument("--limit", type=int, default=None, help="ask at most N questions per split (a fixed random sample)")
    p.add_argument("--max-new-tokens", type=int, default=48, help="longest answer, in tokens")
    p.add_argument("--batch-size", type=int, default=None,
                   help="questions answered together (left-padded batches); default: from the model's size, 64 "
                        "for the bundled model")
    p.add_argument("--retrieval", action="store_true", help="put the best-matching docs passages in each prompt (RAG)")
    p.add_argument("--template", default=None, help="prompt format: chat, qa, alpaca (default: the run's, else chat)")
    p.add_argument("--skip-bad-rows", action="store_true",
                   help="skip broken rows of --data (they are counted) instead of stopping at the first")
    p.add_argument("--no-loss", action="store_true", help="skip the answer loss / perplexity of the reference answers")
    p.add_argument("--out", default=None, help="report folder (default: <run>/eval/<split> for a run, else runs/eval/<model>/<split>)")


def run(args) -> int:
    from llmcourse.cli.shared import check_positive
    from llmcourse.training.config import TrainConfig
    from llmcourse.data.loading import load_instruction_data
    from llmcourse.evaluation.evaluate import evaluate_model
    from llmcourse.training.runs import runs_dir

    check_positive(args, "limit", "max_new_tokens", "batch_size")
    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    target, saved = resolve_model(args.model)
    template = args.template or (saved.config.template if saved else "chat")
    config = saved.config if saved else TrainConfig()
    data = args.data or config.data
    label = "+".join(splits) + ("-retrieval" if args.retrieval else "")
    out = Path(args.out) if args.out else (saved.path / "eval" / label if saved else
                                           runs_dir() / "eval" / re.sub(r"[^\w.-]+", "_", args.model).strip("_") / label)
    print(f"Evaluating {args.model} on {data} [{', '.join(splits)}]"
          f"{f', {args.limit} questions per split' if args.limit else ''}{' with retrieval' if args.retrieval else ''} ...",
          flush=True)
    # the run's validation share and seed: --split validation asks exactly the rows its training held out
    dd = load_instruction_data(data, validation=config.validation, seed=config.seed, skip_bad_rows=args.skip_bad_rows)
    result = evaluate_model(target, dd, splits=splits, limit=args.limit, name=args.model, retrieval=args.retrieval,
                            loss=not args.no_loss, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                            template=template)
    print(result.summary.to_string(float_format=lambda v: f"{v:.3f}"))
    path = result.save(out)
    n = len(result.table)
    print(f"{n} questions answered in {result.seconds:.1f} s ({result.seconds / max(n, 1):.2f} s per question). Report: {path}")
    return 0
