"""howhard.policies."""
