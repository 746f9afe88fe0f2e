"""Teams, memberships and roles, API keys."""
