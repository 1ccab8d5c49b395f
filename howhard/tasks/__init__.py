"""howhard.tasks."""
