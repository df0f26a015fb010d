"""eqglb: equitable geographical load balancing (GLB) of AI inference."""

from eqglb.scenario import DIMS, Dispatch, Scenario, ScenarioError, SolveInfo
from eqglb.units import PlausibilityError, PlausibilityWarning

__all__ = ["DIMS", "Dispatch", "PlausibilityError", "PlausibilityWarning", "Scenario",
           "ScenarioError", "SolveInfo"]
__version__ = "0.1.0"
