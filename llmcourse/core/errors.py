"""The one exception type llmcourse raises for problems a user can fix."""


class CourseError(Exception):
    """A problem with the user's input or environment, with what to do about it.

    The message is one or a few plain sentences: what was wrong, where, and what to do.
    The CLI prints it without a traceback; notebooks show it as a single red line.
    """


_CLI = {"on": False}  # set while `python -m llmcourse` runs a command


def say_call(python: str, cli: str) -> str:
    """The call a hint names, as the user works: `python -m llmcourse ...` on the command line, else the Python form."""
    return f"`python -m llmcourse {cli}`" if _CLI["on"] else python


class cli_hints:
    """Context manager: hints inside name the command-line form (the CLI wraps each command in it)."""

    def __enter__(self):
        self.before, _CLI["on"] = _CLI["on"], True

    def __exit__(self, *exc):
        _CLI["on"] = self.before
