"""reproflake: hermetic, bit-for-bit reproducible pipelines built by Nix."""

__version__ = "0.1.0"
