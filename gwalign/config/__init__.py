"""One typed, validated configuration for a whole run, split by pipeline stage.

:class:`GWConfig` (the engine) groups :class:`GraphConfig`, :class:`DistanceConfig`,
:class:`SolverConfig`, :class:`StartsConfig` and :class:`ComputeConfig`; :class:`RunConfig` adds
how ``gwalign run`` reads its files (:class:`InputConfig`) and what it writes
(:class:`OutputConfig`). Every field name is unique across stages, so TOML presets, ``--set`` style
overrides and :meth:`GWConfig.replace` name fields flat (``k``, ``epsilon``, ``top_k``).

Each field declares its type once: a ``Literal`` lists its choices, and the bounds of a number sit
in the field's metadata; :func:`~gwalign.config.fields.validate_fields` checks both. ``None`` means
"automatic", and every automatic value is resolved by a method of :class:`GWConfig` (``knn_k``,
``relative_epsilon``, ``resolved_distance``, ``resolved_gradient``, ``lowrank_starts``, ...). The
measurements behind the defaults are in docs/how-it-works/.
"""

from gwalign.config.engine import (AUTO_PRECOMPUTED_MAX_POINTS, CCA_DIFFUSION_STEPS,
                                   EPSILON_EXACT, EPSILON_LANDMARK, K_AUTO, K_MIN, TRANSFER_K, ComputeConfig,
                                   DistanceConfig, GraphConfig, GWConfig, SolverConfig, StartsConfig)
from gwalign.config.fields import load_toml
from gwalign.config.run import InputConfig, OutputConfig, RunConfig

__all__ = ["GWConfig", "RunConfig", "GraphConfig", "DistanceConfig", "SolverConfig", "StartsConfig",
           "ComputeConfig", "InputConfig", "OutputConfig", "load_toml",
           "AUTO_PRECOMPUTED_MAX_POINTS", "CCA_DIFFUSION_STEPS", "EPSILON_EXACT", "EPSILON_LANDMARK", "K_AUTO",
           "K_MIN", "TRANSFER_K"]
