"""``eqglb serve``: the dispatch service (:func:`eqglb.service.server.serve_command`) with
the shared objective options.

The service's own command function keeps its service options (``--db``, ``--token``,
``--host``, ...); its objective parameters are replaced by the shared, registry-generated
ones (:mod:`eqglb.cli.options`) and passed on by name: every one the function accepts
(by name or through ``**kwargs``). An option it does not accept yet is refused with a
clear message when given a value other than its default, never dropped silently.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from eqglb.cli.options import ObjectiveOptions, objective_options, objective_parameters
from eqglb.errors import CLIError

__all__ = ["adapt", "serve_command"]


def adapt(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with its objective parameters replaced by the shared objective options."""
    generated = {p.name: p for p in objective_parameters()}
    sig = inspect.signature(fn, eval_str=True)
    params = list(sig.parameters.values())
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    accepted = {p.name for p in params} & set(generated)
    kept = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for p in params
        if p.name not in generated and p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    marker = inspect.Parameter(
        "objective",
        inspect.Parameter.KEYWORD_ONLY,
        annotation=ObjectiveOptions,
        default=ObjectiveOptions(),
    )

    @functools.wraps(fn)
    def command(**kwargs: Any) -> Any:
        opts: ObjectiveOptions = kwargs.pop("objective")
        given = opts.kwargs()
        for name, value in given.items():
            if name in accepted or var_kw or value == generated[name].default:
                continue
            flag = "--" + name.replace("_", "-")
            raise CLIError(f"{flag} is not supported by this command yet; leave it out")
        passed = {k: v for k, v in given.items() if k in accepted or var_kw}
        return fn(**kwargs, **passed)

    command.__signature__ = sig.replace(parameters=[*kept, marker])  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in [*kept, marker]}
    return objective_options(command)  # type: ignore[no-any-return]


def _serve() -> Callable[..., Any]:
    from eqglb.service.server import serve_command as service_command

    return adapt(service_command)


serve_command = _serve()
