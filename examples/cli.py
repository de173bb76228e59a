"""How the example binaries start: absl flags, then (maybe) TensorFlow.

`run(main, program=...)` is absl's `app.run` with two changes users of
command-line tools expect:

* `--help` (`--helpshort`, `--helpfull`) prints the help and exits
  with status 0 (absl exits with 1);
* a flag absl cannot parse (an unknown flag, a non-number for a number)
  prints one `<program>: error: ...` line and exits with status 2, as a
  bad value found by the binary's own checks does (`fail`).

It imports no TensorFlow: a binary parses and checks its flags first and
imports TensorFlow in `main`, so a mistyped flag is reported at once.
"""

from __future__ import annotations

import sys
from typing import Callable
from typing import List
from typing import NoReturn

from absl import app
from absl import flags

HELP_FLAGS = ("-help", "--help", "--helpshort", "--helpfull", "-?")


def fail(program: str, message: str) -> NoReturn:
    """Prints `<program>: error: <message>` on stderr; exits with status 2."""
    print(f"{program}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def run(main: Callable[[List[str]], int], *, program: str) -> None:
    """`app.run(main)` with `--help` exiting 0 and flag errors exiting 2."""

    def parse(argv: List[str]) -> List[str]:
        try:
            return flags.FLAGS(argv)
        except flags.Error as error:
            fail(program, str(error).replace("\n", " "))
        except SystemExit as exit_:
            asked = any(arg.split("=")[0] in HELP_FLAGS for arg in argv[1:])
            if asked and exit_.code == 1:
                sys.exit(0)
            raise

    app.run(main, flags_parser=parse)
