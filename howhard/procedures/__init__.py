"""howhard.procedures."""
