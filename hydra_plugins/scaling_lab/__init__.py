"""Scaling Lab's Hydra plugins: the SLURM launcher (see launcher.py)."""
