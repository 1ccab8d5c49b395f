"""``python -m howhard`` runs the command line."""

import sys

from howhard.cli import main

sys.exit(main())
