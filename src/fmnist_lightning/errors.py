"""What stops a command, and its exit status: 0 done, 1 the work failed, 2 the input was
refused, 128+n stopped by signal n (every command's: docs/resume-and-errors.md). ``cli.run``
prints an :class:`FmnistError` as one line on stderr, never a traceback, and exits with its
``exit_status``. Every layer may raise these; this module imports nothing of the project."""


class FmnistError(Exception):
    """A failure the user can act on; its message is one sentence saying what to do."""

    exit_status = 2
    prefix = "Error: "


class UsageError(FmnistError, ValueError):
    """The input was refused (exit status 2): a config value, an option, a file given."""


class Failed(FmnistError, RuntimeError):
    """The work itself failed (exit status 1)."""

    exit_status = 1


class Stopped(Failed):
    """A run that stopped early and says why itself (printed without "Error: ")."""

    prefix = ""

    def __init__(self, message: str, signum: int | None = None) -> None:
        super().__init__(message)
        if signum is not None:  # the shell's convention: scripts see the run did not finish
            self.exit_status = 128 + signum
