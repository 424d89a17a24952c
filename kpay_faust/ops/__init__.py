"""ops pillar."""
