"""rlhf-top: a live terminal monitor and diagnostician for post-training runs."""

__version__ = "0.1.0"
