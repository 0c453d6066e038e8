"""Local development: an embedded Redis, a signed sample sender, a stream tail."""
