"""Exit codes and the user's errors: the bottom of the house, imported by everything, importing nothing.

Exit codes of every `ballotbox` command: 0 done; 1 the job ran but its check failed (tallies differ,
an image unreadable, a verification found a fault); 2 bad input (a corrupt election package, a missing
file, a wrong option): the message names it and what to do.
"""

from __future__ import annotations

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class UserError(Exception):
    """Bad input from the person at the keyboard: printed without a traceback, exit 2."""
