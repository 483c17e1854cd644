"""`python -m edge ...`: see edge/cli.py for the commands and exit codes."""

import sys

from edge.cli import main

sys.exit(main())
