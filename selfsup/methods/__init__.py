"""Lightning modules: views -> backbone -> head(s) -> loss -> log."""

from selfsup.methods.simclr import SimCLR

__all__ = ["SimCLR"]
