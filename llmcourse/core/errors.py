"""The one exception type llmcourse raises for problems a user can fix."""


class CourseError(Exception):
    """A problem with the user's input or environment, with what to do about it.

    The message is one or a few plain sentences: what was wrong, where, and what to do.
    The CLI prints it without a traceback; notebooks show it as a single red line.
    """
