"""web pillar."""
