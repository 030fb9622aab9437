"""lensify: wrappers, the unwrap fold and composable optics for JAX pytrees."""

from lensify._records import field as field
from lensify.numerics import inv_softplus as inv_softplus
from lensify.wrappers import AbstractUnwrappable as AbstractUnwrappable
from lensify.wrappers import NonTrainable as NonTrainable
from lensify.wrappers import Parameterize as Parameterize
from lensify.wrappers import RealToIncreasingOnInterval as RealToIncreasingOnInterval
from lensify.wrappers import WeightNormalization as WeightNormalization
from lensify.wrappers import contains_unwrappables as contains_unwrappables
from lensify.wrappers import is_unwrappable as is_unwrappable
from lensify.wrappers import non_trainable as non_trainable
from lensify.wrappers import unwrap as unwrap

__version__ = "0.1.0"

__all__ = [
    "AbstractUnwrappable",
    "NonTrainable",
    "Parameterize",
    "RealToIncreasingOnInterval",
    "WeightNormalization",
    "contains_unwrappables",
    "field",
    "inv_softplus",
    "is_unwrappable",
    "non_trainable",
    "unwrap",
]
