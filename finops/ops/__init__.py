"""FrameOps' own operability: deployment checks, health, and self-metrics."""
