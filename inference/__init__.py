"""The reference video-diffusion runner: `python -m inference {run,plan,soak,train}`.

Imports torch; the web process never imports this package.
"""
