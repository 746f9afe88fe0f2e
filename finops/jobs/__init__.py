"""Render jobs and clips: a requested deliverable and its generation attempts."""
