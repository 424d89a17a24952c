"""control pillar."""
