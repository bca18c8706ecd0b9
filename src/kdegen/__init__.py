"""kdegen: generative models with non-parametric latent distributions, judged by distributions."""

from kdegen.errors import UsageError

__version__ = "0.1.0"

__all__ = ["UsageError", "__version__"]
