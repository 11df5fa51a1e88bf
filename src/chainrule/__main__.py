"""``python -m chainrule`` runs the command line (see ``chainrule --help``)."""

import sys

from .cli import main

sys.exit(main())
