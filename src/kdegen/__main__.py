"""``python -m kdegen`` (also what ``torchrun -m kdegen`` runs)."""

import sys

from kdegen.cli import main

if __name__ == "__main__":  # not when a spawned worker process imports it (--jobs)
    sys.exit(main())
