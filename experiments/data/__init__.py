"""Datasets of the experiments, all from files shipped in packages (nothing is downloaded)."""
