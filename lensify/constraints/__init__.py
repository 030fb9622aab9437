"""Constraint wrappers: an unconstrained raw parameter that unwraps into a support.

Each constraint stores a raw array that an optimiser may move anywhere and unwraps to
``forward(raw)``, a value in its support (positive numbers, an interval, the simplex,
...). Constructing one from a value is *value-preserving*: the raw parameter is
``inverse(value)``, so ``unwrap(positive(x))`` is ``x`` and wrapping part of a model never
changes what it computes. A value outside the support is a :class:`ConstraintError` at
construction.

The modules: ``_protocol`` (:class:`AbstractConstraint`, :class:`ConstraintError`,
:class:`Tolerance`, :class:`Preimage`), ``_elementwise`` (positive values, intervals),
``_bounds`` (static bounds), ``_vectors`` (simplex, unit vectors), ``_matrices``
(Cholesky factors, symmetric matrices) and ``_numpyro`` (any numpyro constraint, numpyro
imported only when used). Every public name is re-exported here.
"""

from lensify.constraints._elementwise import Interval as Interval
from lensify.constraints._elementwise import Positive as Positive
from lensify.constraints._elementwise import interval as interval
from lensify.constraints._elementwise import positive as positive
from lensify.constraints._matrices import CholeskyFactor as CholeskyFactor
from lensify.constraints._matrices import Symmetric as Symmetric
from lensify.constraints._matrices import cholesky_factor as cholesky_factor
from lensify.constraints._matrices import symmetric as symmetric
from lensify.constraints._numpyro import Constrained as Constrained
from lensify.constraints._numpyro import NumpyroConstraint as NumpyroConstraint
from lensify.constraints._numpyro import constrain as constrain
from lensify.constraints._protocol import AbstractConstraint as AbstractConstraint
from lensify.constraints._protocol import ConstraintError as ConstraintError
from lensify.constraints._protocol import Preimage as Preimage
from lensify.constraints._protocol import Tolerance as Tolerance
from lensify.constraints._vectors import Simplex as Simplex
from lensify.constraints._vectors import UnitVector as UnitVector
from lensify.constraints._vectors import simplex as simplex
from lensify.constraints._vectors import unit_vector as unit_vector

__all__ = [
    "AbstractConstraint",
    "CholeskyFactor",
    "Constrained",
    "ConstraintError",
    "Interval",
    "NumpyroConstraint",
    "Positive",
    "Preimage",
    "Simplex",
    "Symmetric",
    "Tolerance",
    "UnitVector",
    "cholesky_factor",
    "constrain",
    "interval",
    "positive",
    "simplex",
    "symmetric",
    "unit_vector",
]

# Public classes report the package as their home: in tracebacks, reprs and pickles
# (a pickle names lensify.constraints.Positive, whichever module defines it).
for _cls in (
    AbstractConstraint,
    CholeskyFactor,
    Constrained,
    ConstraintError,
    Interval,
    NumpyroConstraint,
    Positive,
    Preimage,
    Simplex,
    Symmetric,
    Tolerance,
    UnitVector,
):
    _cls.__module__ = __name__
del _cls
