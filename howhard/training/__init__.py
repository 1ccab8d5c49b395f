"""howhard.training."""
