"""The objective options every command shares, generated from the burden registry.

:func:`objective_options` gives a typer command ``--q``, ``--q-<burden>`` and
``--mu-<burden>`` for every burden of :data:`eqglb.burdens.BURDENS` (so a new burden gets
its options without a CLI edit), ``--combined-env``, ``--total-quality``,
``--normalize/--plain-norms`` and ``--switching-cost`` (not with ``multiple``); the command receives them as one
:class:`ObjectiveOptions` argument called ``objective``. Defaults come from
:mod:`eqglb.defaults` (shown in the help, never defined here).

``multiple=True`` (``eqglb sweep``) makes ``--q`` and ``--mu-<burden>`` repeatable: each
gives a list of values to sweep (``--q-<burden>`` fixes one term's q at every point).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from eqglb import defaults
from eqglb.burdens import BURDENS, Burden
from eqglb.errors import CLIError

if TYPE_CHECKING:
    from eqglb.costs import Objective
    from eqglb.scenario import Scenario

__all__ = [
    "ObjectiveOptions",
    "mu_option",
    "objective_options",
    "objective_parameters",
    "q_option",
    "shown_burdens",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Name of the command parameter that receives the :class:`ObjectiveOptions`.
PARAMETER = "objective"


@dataclass(frozen=True)
class ObjectiveOptions:
    """The objective options as given on the command line (None: the default).

    Attributes
    ----------
    q : str, list of str or None
        ``--q`` (a list with ``multiple``).
    mu, q_terms : dict burden -> value
        ``--mu-<burden>`` and ``--q-<burden>`` of every registered burden (lists of
        floats for ``mu`` with ``multiple``).
    combined_env, total_quality, normalize : bool
    switching_cost : float
        ``--switching-cost`` [USD per request moved] (docs/switching.md).
    """

    q: Any = None
    mu: Mapping[str, Any] = field(default_factory=dict)
    q_terms: Mapping[str, str | None] = field(default_factory=dict)
    combined_env: bool = False
    total_quality: bool = False
    normalize: bool = True
    switching_cost: float = 0.0

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`eqglb.defaults.build_objective` (single values)."""
        out: dict[str, Any] = {
            "q": self.q,
            "combined_env": self.combined_env,
            "total_quality": self.total_quality,
            "normalize": self.normalize,
        }
        if self.switching_cost:
            out["switching_cost"] = self.switching_cost
        out.update({f"mu_{b}": v for b, v in self.mu.items()})
        out.update({f"q_{b}": v for b, v in self.q_terms.items()})
        return out

    def build(self, sc: Scenario) -> Objective:
        """The objective on ``sc`` (:func:`eqglb.defaults.build_objective`); a bad value
        is a :class:`eqglb.errors.CLIError` naming the option."""
        try:
            return defaults.build_objective(sc, **self.kwargs())
        except ValueError as exc:
            raise CLIError(str(exc)) from None


def shown_burdens(obj: Objective) -> list[str]:
    """The burdens a command reports for ``obj``: all, except those not priced by
    default (:func:`eqglb.defaults.default_mu` = 0, e.g. health) that ``obj`` does not
    price either, so output stays as it was until such a burden is asked for."""
    return [
        n
        for n, b in BURDENS.items()
        if b.side == "region" or defaults.default_mu(n) != 0 or obj.terms[n].mu != 0
    ]


# --------------------------------------------------------------------------- the options
def _default_text(b: Burden) -> str:
    """The default of ``--mu-<b>`` in words, from eqglb.defaults."""
    if b.side == "region":  # scenario-dependent (defaults.default_mu_social)
        return (
            f"{defaults.DEFAULT_QUALITY_VALUE:g} USD per request per unit of loss (about "
            "the price of a long answer from a frontier API model) times the mean requests "
            "per region over the horizon, so the trade-off does not depend on --days"
        )
    mu = defaults.default_mu(b.name)
    return f"{mu:g}" + (" (reported, not priced)" if mu == 0 else "")


def q_option(name: str | None = None, *, multiple: bool = False) -> Any:
    """The ``Annotated`` type of ``--q`` (``name`` None) or of ``--q-<name>``."""
    if name is None:
        if multiple:
            return Annotated[
                list[str] | None,
                typer.Option(
                    "--q",
                    metavar="Q",
                    help="Norm order q >= 1 of every equity term, or 'inf'; repeat for "
                    "several. Default: " + " ".join(str(v) for v in _sweep_q()) + ".",
                ),
            ]
        return Annotated[
            str | None,
            typer.Option(
                "--q",
                metavar="Q",
                help="Norm order q >= 1 of every equity term, or 'inf' for the worst region "
                "(minimax, as eGLB). q = 1 is the equity-oblivious total. Default: "
                f"{defaults.DEFAULT_Q}.",
            ),
        ]
    b = BURDENS[name]
    extra = (
        ", or of the combined environmental term with --combined-env"
        if name == _first_combinable()
        else ""
    )
    where = " at every point" if multiple else ""
    return Annotated[
        str | None,
        typer.Option(
            f"--q-{name}",
            metavar="Q",
            help=f"Norm order of the {b.label} term{extra}{where} (overrides --q).",
        ),
    ]


def mu_option(name: str, *, multiple: bool = False) -> Any:
    """The ``Annotated`` type of ``--mu-<name>`` (a list with ``multiple``)."""
    b = BURDENS[name]
    unit = b.weight_unit
    if b.side == "region":
        unit = "USD per unit of average quality loss per request"
    if b.side == "region":
        what = f"Weight of the {b.label} norm [{unit}] ([USD per request of loss] with --total-quality)."
    else:
        what = f"Weight of the {b.label} norm [{unit}]: {b.help} [{b.unit}]."
    more = " Repeat for a grid." if multiple else ""
    # a fixed default is shown by typer itself ([default: ...])
    default = f" Default: {_default_text(b)}." if multiple or b.side == "region" else ""
    typ = list[float] | None if multiple else float | None
    metavar = "USD" if b.side == "region" else unit.upper().replace(" ", "")
    return Annotated[
        typ,
        typer.Option(f"--mu-{name}", min=0.0, metavar=metavar, help=f"{what}{more}{default}"),
    ]


def _first_combinable() -> str | None:
    return next((n for n, b in BURDENS.items() if b.combinable), None)


def _sweep_q() -> tuple[Any, ...]:
    from eqglb.sweep import DEFAULT_Q

    return DEFAULT_Q


_COMBINED = Annotated[
    bool,
    typer.Option(
        "--combined-env",
        help="Use one norm (order --q-"
        + str(_first_combinable())
        + ") of the combined regional cost "
        + " + ".join(f"mu_{n} {b.symbol}_i" for n, b in BURDENS.items() if b.combinable)
        + " [USD] instead of one norm each.",
    ),
]
_TOTAL = Annotated[
    bool,
    typer.Option(
        "--total-quality",
        help="Quality cost of a region = total loss [requests] instead of "
        "the average loss per request [-].",
    ),
]
_NORMALIZE = Annotated[
    bool,
    typer.Option(
        "--normalize/--plain-norms",
        help="Apply the per-unit weights to normalised norms n^(1-1/q) ||v||_q (default: the "
        "same weights mean the same at every q) or to plain L_q norms (as docs/model.md).",
    ),
]
_SWITCHING = Annotated[
    float,
    typer.Option(
        "--switching-cost",
        metavar="USD",
        help="Price of one request moved to another data centre or model between "
        "consecutive slots [USD per request] (docs/switching.md); default 0 (none). "
        "Exact in the reference model and the online policies; the structured solvers "
        "refuse it.",
    ),
]


def _names(multiple: bool) -> list[tuple[str, Any, Any]]:
    """(parameter name, annotation, default) of every objective option, in help order."""
    out: list[tuple[str, Any, Any]] = [("q", q_option(multiple=multiple), None)]
    out += [(f"q_{n}", q_option(n, multiple=multiple), None) for n in BURDENS]
    for n, b in BURDENS.items():
        default = None if (multiple or b.side == "region") else defaults.default_mu(n)
        out.append((f"mu_{n}", mu_option(n, multiple=multiple), default))
    out += [
        ("combined_env", _COMBINED, False),
        ("total_quality", _TOTAL, False),
        ("normalize", _NORMALIZE, True),
    ]
    if not multiple:
        out.append(("switching_cost", _SWITCHING, 0.0))
    return out


def objective_parameters(*, multiple: bool = False) -> list[inspect.Parameter]:
    """The typer parameters of the objective options (keyword-only)."""
    return [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=default)
        for name, ann, default in _names(multiple)
    ]


def _evaluated_signature(fn: Callable[..., Any]) -> inspect.Signature:
    """``fn``'s signature with string annotations evaluated in its module (typer needs
    the ``Annotated`` objects); the ``objective`` parameter's own is not needed."""
    sig = inspect.signature(fn)
    namespace = getattr(inspect.unwrap(fn), "__globals__", {})
    params = []
    for p in sig.parameters.values():
        ann = p.annotation
        if isinstance(ann, str) and p.name != PARAMETER:
            ann = eval(ann, namespace)  # noqa: S307 - an annotation of eqglb's own code
        params.append(p.replace(annotation=ann))
    ret = sig.return_annotation
    return sig.replace(parameters=params, return_annotation=None if ret == "None" else ret)


def objective_options(fn: F | None = None, *, multiple: bool = False) -> Any:
    """Decorator: give a typer command the shared objective options (module docstring).

    The command declares a parameter ``objective: ObjectiveOptions``; the options take
    its place in the command's signature, and the command receives them collected in an
    :class:`ObjectiveOptions`. Use as ``@objective_options`` or
    ``@objective_options(multiple=True)``.
    """
    if fn is None:
        return functools.partial(objective_options, multiple=multiple)
    sig = _evaluated_signature(fn)
    if PARAMETER not in sig.parameters:
        raise TypeError(f"{fn.__qualname__} needs a parameter {PARAMETER!r} to receive them")
    generated = objective_parameters(multiple=multiple)
    names = [p.name for p in generated]
    clash = set(names) & set(sig.parameters)
    if clash:
        raise TypeError(f"{fn.__qualname__} already has {sorted(clash)}")
    params: list[inspect.Parameter] = []
    for p in sig.parameters.values():
        if p.name == PARAMETER:
            params += generated
        else:
            params.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(fn)
    def command(**kwargs: Any) -> Any:
        values = {n: kwargs.pop(n) for n in names}
        opts = ObjectiveOptions(
            q=values.pop("q"),
            mu={b: values.pop(f"mu_{b}") for b in BURDENS},
            q_terms={b: values.pop(f"q_{b}") for b in BURDENS},
            **values,
        )
        return fn(**kwargs, **{PARAMETER: opts})

    command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__annotations__["return"] = sig.return_annotation
    return command
