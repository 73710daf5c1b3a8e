"""Scaling Lab's Hydra plugins: the SLURM launcher (launcher.py) and a sweeper that skips
finished runs (sweeper.py)."""
