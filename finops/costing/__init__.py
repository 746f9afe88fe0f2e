"""The cost ledger: every paid GPU-hour attributed to a team, idle or unallocated."""
