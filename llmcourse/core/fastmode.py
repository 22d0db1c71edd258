"""Fast mode (LLMCOURSE_FAST=1, set by the test suite and `check-course`): the notebooks' real code paths with
tiny sizes. It is decided here, inside the library, so no learner cell carries test scaffolding."""
import os

FAST_ENV = "LLMCOURSE_FAST"


def fast_mode() -> bool:
    """True while the notebooks run under the test suite's fast mode."""
    return os.environ.get(FAST_ENV, "") == "1"


def sized(normal, fast):
    """`normal` for a learner; `fast` when the suite runs the notebooks in fast mode."""
    return fast if fast_mode() else normal


def capped(limit, cap):
    """`limit` for a learner; in fast mode at most `cap` (None or <= 0, meaning no limit, becomes `cap`)."""
    if not fast_mode():
        return limit
    return cap if limit is None or limit <= 0 or limit > cap else limit
