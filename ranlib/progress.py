"""The progress bar every long loop in ranlib uses (one place to change how it renders)."""

from tqdm.auto import tqdm

__all__ = ["tqdm"]
