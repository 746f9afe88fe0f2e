"""Alert rules, alerts, channels and notifications."""
