"""`python -m llmcourse check-course`: execute every notebook, as an instructor does before a workshop."""
from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("--output-dir", default="executed", help="folder for the executed copies (never the notebooks folder)")
    p.add_argument("--full", action="store_true", help="run with the real default settings (the times participants see)")
    p.add_argument("--solutions", action="store_true", help="also execute the solution notebooks")
    p.add_argument("--notebooks", default=None, help="notebooks folder (default: the course's)")
    p.add_argument("--only", nargs="*", default=None, help="run only notebooks whose name starts with these (e.g. 00 03)")
    p.add_argument("--skip-doctor", action="store_true", help="do not run the environment check first")


def run(args) -> int:
    from llmcourse.course.check_course import check_course

    return check_course(output_dir=args.output_dir, full=args.full, solutions=args.solutions,
                        notebooks=args.notebooks, only=args.only, skip_doctor=args.skip_doctor)
