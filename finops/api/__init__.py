"""The versioned REST API: authentication, permissions, errors, endpoints."""
