"""Who takes a call: the caller directory, agent presence with atomic reservation, and the routing policy."""
