"""Stages: one thin `main()` per DVC stage, run as `python -m pipeline.stages.<module>`."""
