"""metrics pillar."""
