"""``python -m howhard`` runs the command line."""

import sys

from howhard.cli import main

# Guarded: worker processes (MathAnswerVerifier scores in them) load the parent's main module
# under another name, and must not run the command line again.
if __name__ == "__main__":
    sys.exit(main())
