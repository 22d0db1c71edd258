"""`python -m llmcourse export RUN --to gguf`: a run as one GGUF file for llama.cpp and Ollama, a Modelfile beside it."""
from __future__ import annotations

from llmcourse.cli.shared import check_positive

QUANTS = ("f16", "q8_0", "q4_0")  # as llmcourse.models.gguf_file.QUANTS (not imported: the parser stays light)


def add_arguments(p) -> None:
    p.add_argument("run", help="the run: its folder (runs/<name>), its name, or the start of its name (the newest match)")
    p.add_argument("--to", choices=["gguf"], default="gguf", help="file format (default gguf: llama.cpp, Ollama)")
    p.add_argument("--quant", choices=QUANTS, default="q8_0",
                   help="f16 (exact), q8_0 (default: half of f16, nearly the same answers) or q4_0 (a quarter)")
    p.add_argument("--output", help="the .gguf file to write (default runs/<name>/export/<name>-<quant>.gguf)")
    p.add_argument("--overwrite", action="store_true", help="replace the .gguf file if it exists")
    p.add_argument("--verify", action="store_true",
                   help="read the file back and compare its answers with the run's on Kettlebird test questions")
    p.add_argument("--limit", type=int, default=20, help="test questions --verify asks (default 20)")


def run(args) -> int:
    check_positive(args, "limit")
    from llmcourse.training.export import check_target, export_gguf, export_path
    from llmcourse.training.runs import load_run

    found = load_run(args.run)
    target = check_target(args.output or export_path(found, args.quant), args.overwrite)  # before anything loads
    path = export_gguf(found, target, args.quant, overwrite=args.overwrite)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {args.quant}); beside it: Modelfile and README.md "
          "(how to run it with Ollama or llama.cpp)", flush=True)
    if args.verify:
        from llmcourse.evaluation.evaluate import question_set
        from llmcourse.evaluation.export_check import verify_export

        questions = question_set("kettlebird", ("test",), limit=args.limit)
        print(verify_export(path, found, questions))
    return 0
