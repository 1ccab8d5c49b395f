"""howhard.scheduler."""
