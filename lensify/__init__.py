"""lensify: wrappers, the unwrap fold and composable optics for JAX pytrees."""

from lensify import utils as utils
from lensify._increasing import RealToIncreasingOnInterval as RealToIncreasingOnInterval
from lensify._log_det import unwrap_with_log_det as unwrap_with_log_det
from lensify._records import FrozenRecordError as FrozenRecordError
from lensify._records import field as field
from lensify._records import replace as replace
from lensify._tree import tree_equal as tree_equal
from lensify._walker import StructureMismatchError as StructureMismatchError
from lensify.algebra import compose as compose
from lensify.algebra import count_parameters as count_parameters
from lensify.algebra import describe as describe
from lensify.algebra import fold as fold
from lensify.algebra import identity as identity
from lensify.algebra import simplify as simplify
from lensify.constraints import AbstractConstraint as AbstractConstraint
from lensify.constraints import CholeskyFactor as CholeskyFactor
from lensify.constraints import Constrained as Constrained
from lensify.constraints import ConstraintError as ConstraintError
from lensify.constraints import Interval as Interval
from lensify.constraints import Positive as Positive
from lensify.constraints import Simplex as Simplex
from lensify.constraints import Symmetric as Symmetric
from lensify.constraints import Tolerance as Tolerance
from lensify.constraints import UnitVector as UnitVector
from lensify.constraints import cholesky_factor as cholesky_factor
from lensify.constraints import constrain as constrain
from lensify.constraints import interval as interval
from lensify.constraints import positive as positive
from lensify.constraints import simplex as simplex
from lensify.constraints import symmetric as symmetric
from lensify.constraints import unit_vector as unit_vector
from lensify.numerics import inv_softplus as inv_softplus
from lensify.optics import FocusCountError as FocusCountError
from lensify.optics import MissingStepError as MissingStepError
from lensify.optics import Optic as Optic
from lensify.optics import OpticError as OpticError
from lensify.optics import OverlapError as OverlapError
from lensify.optics import TracedPredicateError as TracedPredicateError
from lensify.optics import at as at
from lensify.optics import combine as combine
from lensify.wrappers import AbstractUnwrappable as AbstractUnwrappable
from lensify.wrappers import NoLogDetError as NoLogDetError
from lensify.wrappers import NonTrainable as NonTrainable
from lensify.wrappers import NotInvertibleError as NotInvertibleError
from lensify.wrappers import Parameterize as Parameterize
from lensify.wrappers import WeightNormalization as WeightNormalization
from lensify.wrappers import contains_unwrappables as contains_unwrappables
from lensify.wrappers import is_unwrappable as is_unwrappable
from lensify.wrappers import non_trainable as non_trainable
from lensify.wrappers import register_inverse as register_inverse
from lensify.wrappers import register_with_value as register_with_value
from lensify.wrappers import rewrap as rewrap
from lensify.wrappers import unwrap as unwrap

__version__ = "0.1.0"

# The exceptions a public function can raise print as lensify.<Name>, the name a user
# catches them by.
for _error in (
    ConstraintError,
    FocusCountError,
    FrozenRecordError,
    MissingStepError,
    NoLogDetError,
    NotInvertibleError,
    OpticError,
    OverlapError,
    StructureMismatchError,
    TracedPredicateError,
):
    _error.__module__ = __name__
del _error

__all__ = [
    "AbstractConstraint",
    "AbstractUnwrappable",
    "CholeskyFactor",
    "Constrained",
    "ConstraintError",
    "FocusCountError",
    "FrozenRecordError",
    "Interval",
    "MissingStepError",
    "NoLogDetError",
    "NonTrainable",
    "NotInvertibleError",
    "Optic",
    "OpticError",
    "OverlapError",
    "Parameterize",
    "Positive",
    "RealToIncreasingOnInterval",
    "Simplex",
    "StructureMismatchError",
    "Symmetric",
    "Tolerance",
    "TracedPredicateError",
    "UnitVector",
    "WeightNormalization",
    "at",
    "cholesky_factor",
    "combine",
    "compose",
    "constrain",
    "contains_unwrappables",
    "count_parameters",
    "describe",
    "field",
    "fold",
    "identity",
    "interval",
    "inv_softplus",
    "is_unwrappable",
    "non_trainable",
    "positive",
    "register_inverse",
    "register_with_value",
    "replace",
    "rewrap",
    "simplex",
    "simplify",
    "symmetric",
    "tree_equal",
    "unit_vector",
    "unwrap",
    "unwrap_with_log_det",
    "utils",
]
