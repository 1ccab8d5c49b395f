"""howhard.scoring."""
