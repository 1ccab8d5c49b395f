"""howhard.evaluation."""
