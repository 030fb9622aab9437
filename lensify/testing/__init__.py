"""Hypothesis strategies and law checkers for code built on lensify.

Install with the ``lensify[testing]`` extra; this is the only lensify package that
imports hypothesis. Importing it also registers hypothesis type strategies for the
built-in wrappers, so ``st.from_type(lf.Parameterize)`` and friends work.

lensify's own test suite draws its trees from these same strategies.

Example:
    >>> import lensify as lf
    >>> import lensify.testing as lt
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=5, deadline=None)
    ... @given(lt.wrapped_trees())
    ... def test_unwrap_is_idempotent(tree):
    ...     once = lf.unwrap(tree)
    ...     assert lt.trees_close(lf.unwrap(once), once)
    >>> test_unwrap_is_idempotent()
"""

try:
    import hypothesis as _hypothesis
except ImportError as _error:
    raise ImportError(
        "lensify.testing needs hypothesis, which lensify installs only with its testing "
        "extra: pip install 'lensify[testing]'"
    ) from _error

from lensify.testing._catalogue import CATALOGUE as CATALOGUE
from lensify.testing._catalogue import EDGES as EDGES
from lensify.testing._catalogue import Catalogued as Catalogued
from lensify.testing._compare import trees_close as trees_close
from lensify.testing._constraint_laws import assert_constraint_laws as assert_constraint_laws
from lensify.testing._constraint_laws import (
    assert_refused_or_preserved as assert_refused_or_preserved,
)
from lensify.testing._constraint_laws import boundary_values as boundary_values
from lensify.testing._constraint_laws import check_constraint_laws as check_constraint_laws
from lensify.testing._constraint_laws import forward_values as forward_values
from lensify.testing._constraint_laws import tolerance as tolerance
from lensify.testing._leaves import LOW_PRECISION as LOW_PRECISION
from lensify.testing._leaves import SMALL_SHAPES as SMALL_SHAPES
from lensify.testing._leaves import all_leaves as all_leaves
from lensify.testing._leaves import default_leaves as default_leaves
from lensify.testing._leaves import float_arrays as float_arrays
from lensify.testing._leaves import unusual_leaves as unusual_leaves
from lensify.testing._log_det_laws import assert_log_det_laws as assert_log_det_laws
from lensify.testing._log_det_laws import autodiff_log_det as autodiff_log_det
from lensify.testing._log_det_laws import check_log_det_laws as check_log_det_laws
from lensify.testing._log_det_laws import flat_values as flat_values
from lensify.testing._log_det_laws import simplex_coordinates as simplex_coordinates
from lensify.testing._log_det_laws import triangle_coordinates as triangle_coordinates
from lensify.testing._log_det_laws import unit_vector_coordinates as unit_vector_coordinates
from lensify.testing._nodes import ALL_NODES as ALL_NODES
from lensify.testing._nodes import CONTAINERS as CONTAINERS
from lensify.testing._nodes import USER_NODES as USER_NODES
from lensify.testing._nodes import ClassNode as ClassNode
from lensify.testing._nodes import FlatNode as FlatNode
from lensify.testing._nodes import NodeFactory as NodeFactory
from lensify.testing._nodes import TreePair as TreePair
from lensify.testing._nodes import TreeRecord as TreeRecord
from lensify.testing._optic_laws import DEFAULT_UPDATES as DEFAULT_UPDATES
from lensify.testing._optic_laws import assert_agreement_laws as assert_agreement_laws
from lensify.testing._optic_laws import assert_lens_laws as assert_lens_laws
from lensify.testing._optic_laws import assert_traversal_laws as assert_traversal_laws
from lensify.testing._optic_laws import check_agreement_laws as check_agreement_laws
from lensify.testing._optic_laws import check_lens_laws as check_lens_laws
from lensify.testing._optic_laws import check_traversal_laws as check_traversal_laws
from lensify.testing._optics import attribute_lenses_for as attribute_lenses_for
from lensify.testing._optics import is_container as is_container
from lensify.testing._optics import is_float_array as is_float_array
from lensify.testing._optics import is_matrix as is_matrix
from lensify.testing._optics import lenses_for as lenses_for
from lensify.testing._optics import optics_for as optics_for
from lensify.testing._optics import traversals_for as traversals_for
from lensify.testing._trees import pytrees as pytrees
from lensify.testing._value_laws import INVERTIBLE_WRAPPERS as INVERTIBLE_WRAPPERS
from lensify.testing._value_laws import ValueStrategy as ValueStrategy
from lensify.testing._value_laws import assert_value_laws as assert_value_laws
from lensify.testing._value_laws import check_value_laws as check_value_laws
from lensify.testing._value_laws import invertible_constraints as invertible_constraints
from lensify.testing._value_laws import invertible_parameterizations as invertible_parameterizations
from lensify.testing._value_laws import (
    invertible_weight_normalizations as invertible_weight_normalizations,
)
from lensify.testing._value_laws import nudged_values as nudged_values
from lensify.testing._value_laws import value_tolerance as value_tolerance
from lensify.testing._wrapper_laws import assert_vmap_construction as assert_vmap_construction
from lensify.testing._wrapper_laws import assert_wrapper_laws as assert_wrapper_laws
from lensify.testing._wrapper_laws import check_wrapper_laws as check_wrapper_laws
from lensify.testing._wrapper_laws import probe_gradients as probe_gradients
from lensify.testing._wrappers import BUILTIN_WRAPPERS as BUILTIN_WRAPPERS
from lensify.testing._wrappers import WrapperFactory as WrapperFactory
from lensify.testing._wrappers import increasing_on_intervals as increasing_on_intervals
from lensify.testing._wrappers import non_trainables as non_trainables
from lensify.testing._wrappers import parameterizations as parameterizations
from lensify.testing._wrappers import register_type_strategies as _register_type_strategies
from lensify.testing._wrappers import weight_normalizations as weight_normalizations
from lensify.testing._wrappers import wrapped_arrays as wrapped_arrays
from lensify.testing._wrappers import wrapped_trees as wrapped_trees

__all__ = [
    "ALL_NODES",
    "BUILTIN_WRAPPERS",
    "CATALOGUE",
    "CONTAINERS",
    "DEFAULT_UPDATES",
    "EDGES",
    "INVERTIBLE_WRAPPERS",
    "LOW_PRECISION",
    "SMALL_SHAPES",
    "USER_NODES",
    "ValueStrategy",
    "Catalogued",
    "ClassNode",
    "FlatNode",
    "NodeFactory",
    "TreePair",
    "TreeRecord",
    "WrapperFactory",
    "all_leaves",
    "assert_agreement_laws",
    "assert_constraint_laws",
    "assert_lens_laws",
    "assert_log_det_laws",
    "assert_refused_or_preserved",
    "assert_traversal_laws",
    "assert_value_laws",
    "assert_vmap_construction",
    "assert_wrapper_laws",
    "attribute_lenses_for",
    "autodiff_log_det",
    "boundary_values",
    "check_agreement_laws",
    "check_constraint_laws",
    "check_lens_laws",
    "check_log_det_laws",
    "check_traversal_laws",
    "check_value_laws",
    "check_wrapper_laws",
    "default_leaves",
    "flat_values",
    "float_arrays",
    "forward_values",
    "increasing_on_intervals",
    "invertible_constraints",
    "invertible_parameterizations",
    "invertible_weight_normalizations",
    "is_container",
    "is_float_array",
    "is_matrix",
    "lenses_for",
    "non_trainables",
    "nudged_values",
    "optics_for",
    "parameterizations",
    "probe_gradients",
    "simplex_coordinates",
    "pytrees",
    "tolerance",
    "traversals_for",
    "trees_close",
    "triangle_coordinates",
    "unit_vector_coordinates",
    "unusual_leaves",
    "value_tolerance",
    "weight_normalizations",
    "wrapped_arrays",
    "wrapped_trees",
]

_register_type_strategies()
del _hypothesis
