"""`python -m edge.model_store ...`: the model commands with the standard library only (install.sh)."""

import sys

from edge.model_store.cli import main

sys.exit(main())
