"""Raw GPU and storage samples, their rollups, and retention."""
