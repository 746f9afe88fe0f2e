"""Telemetry sources that yield normalised records. Plain Python: never imports Django."""
