"""`python -m trpo.cli ...` (the same as `trpo ...`)."""

import sys

from trpo.cli.main import main

if __name__ == "__main__":  # spawned sampler workers import this module as __mp_main__: nothing to run then
    sys.exit(main())
