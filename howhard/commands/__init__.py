"""Subcommands of the ``howhard`` CLI, one module each (see ``howhard.cli``)."""
