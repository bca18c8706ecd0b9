"""``python -m kdegen`` (also what ``torchrun -m kdegen`` runs)."""

import sys

from kdegen.cli import main

sys.exit(main())
