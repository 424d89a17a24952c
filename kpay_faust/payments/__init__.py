"""payments pillar."""
