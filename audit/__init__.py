"""audit: benchmark and audit harness for Trust & Safety moderation models.

Import-light on purpose: heavy libraries (torch, transformers, datasets, mlflow)
load only inside the functions that need them, so ``audit --help`` stays instant.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
