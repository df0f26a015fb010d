"""Weights as configuration a real proxy consumes: NGINX upstream blocks, Envoy routes.

Both renderers take ``{region: {address: weight}}`` (positive integer weights, as
:meth:`eqglb.service.engine.Engine.weights_table` gives them) and pick a region's
upstream from a request header (default ``X-EqGLB-Region``).

NGINX (``render_nginx``): for the ``http {}`` context, one ``upstream`` block per region
with ``server <address> weight=N;`` lines (NGINX's smooth weighted round robin sends
exactly N of every sum-of-weights requests to a server), and a ``map`` from the region
header to the upstream name so one ``proxy_pass http://$eqglb_upstream;`` serves every
region. Validated by ``nginx -t`` in the tests.

Envoy (``render_envoy``): a v3 ``RouteConfiguration`` (what ``route_config`` in an
``HttpConnectionManager`` or an RDS response holds) with one route per region matching
the header and ``weighted_clusters`` over one cluster per upstream address; with
``bootstrap=True`` a static bootstrap with a listener and those clusters.

HAProxy (``render_haproxy``, ``push_haproxy_weights``): one ``backend`` per region with
``balance roundrobin`` and ``server <name> <address> weight N`` lines, and a ``frontend``
whose ACLs on the region header pick the backend; validated by ``haproxy -c``. Later
weights go in without a reload through the runtime API (``set server <backend>/<server>
weight N`` on the stats socket).

Kubernetes Gateway API (``render_gateway``): ``HTTPRoute`` objects
(``gateway.networking.k8s.io/v1``), one rule per region matching the header exactly,
with weighted ``backendRefs`` to Services; validated against the published CRD schema.

Weight ranges and rounding (``rescale_weights``)
-------------------------------------------------
Each proxy takes integer weights in its own range; a region's weights are the relative
shares ``w_i / sum(w)``:

* NGINX: ``weight=N`` with N >= 1 and no upper bound that eqglb can reach; a 0 is written
  as ``server <address> down;``. Integer weights pass unchanged: no rounding error.
* Envoy: as given (positive integers), no rounding error.
* HAProxy: 0-256 per server (:data:`HAPROXY_MAX_WEIGHT`).
* Gateway API: 0-1,000,000 per ``backendRef`` (:data:`GATEWAY_MAX_WEIGHT`).

Weights that already fit (integers, largest <= the maximum) pass unchanged (the
service's ``weight_total`` is at most 1,000,000, so Gateway API weights are always
exact; HAProxy ones are exact for ``weight_total <= 256``, the default 100 included).
Otherwise a region's weights are re-apportioned by largest remainder to the total
``T = floor(M * sum(w) / max(w))`` (``M`` the proxy's maximum), the largest total whose
largest weight still fits. Each new weight is within 1 of its exact quota ``T * s_i``
and the new weights sum to ``T``, so the share of every server moves by less than
``1 / T <= 1 / M`` of the region's requests (HAProxy: < 0.39 %, Gateway API: < 0.0001 %)
and by less than ``1 / (T * s_i)`` of its own share ``s_i`` (relative error; < 1 / (M - 1)
for the largest server, HAProxy < 0.40 %). A share below ``1 / T`` can round to 0.
"""

from __future__ import annotations

import hashlib
import math
import re
import socket
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

__all__ = [
    "GATEWAY_MAX_WEIGHT",
    "HAPROXY_MAX_WEIGHT",
    "REGION_HEADER",
    "HAProxyRuntimeError",
    "cluster_name",
    "gateway_backend_ref",
    "haproxy_server_name",
    "push_haproxy_table",
    "push_haproxy_weights",
    "render_envoy",
    "render_gateway",
    "render_haproxy",
    "render_nginx",
    "rescale_weights",
    "upstream_names",
]

#: Request header that names the user region of a request.
REGION_HEADER = "X-EqGLB-Region"
_NGINX_SPECIAL = {"default", "hostnames", "include", "volatile"}
#: Largest server weight HAProxy accepts (config and runtime API).
HAPROXY_MAX_WEIGHT = 256
#: Largest ``backendRefs[].weight`` of the Gateway API.
GATEWAY_MAX_WEIGHT = 1_000_000


def rescale_weights(weights: Mapping[str, float], max_weight: int) -> dict[str, int]:
    """Integer weights in ``[0, max_weight]`` with the same shares (see the module notes).

    Weights that are already integers with the largest ``<= max_weight`` are returned
    unchanged. Otherwise they are apportioned by largest remainder (ties: first listed)
    to ``T = floor(max_weight * sum / max)``: each share moves by less than ``1 / T <=
    1 / max_weight`` [fraction of the region's requests].

    Parameters
    ----------
    weights : mapping
        ``{server: weight}``, weights >= 0 (any real numbers).
    max_weight : int
        The proxy's largest weight (>= 1).

    Returns
    -------
    dict ``{server: int}`` in the order of ``weights``.
    """
    if int(max_weight) < 1:
        raise ValueError(f"max_weight = {max_weight!r}; give an integer >= 1")
    vals = {
        a: Fraction(w) if not isinstance(w, float) else Fraction.from_float(w)
        for a, w in weights.items()
    }
    if any(v < 0 for v in vals.values()) or any(
        isinstance(w, float) and not math.isfinite(w) for w in weights.values()
    ):
        raise ValueError(f"weights must be finite and >= 0, got {dict(weights)!r}")
    if not vals:
        return {}
    top = max(vals.values())
    if top == 0:
        return dict.fromkeys(vals, 0)
    if all(v.denominator == 1 for v in vals.values()) and top <= max_weight:
        return {a: int(v) for a, v in vals.items()}
    total_in = sum(vals.values())
    total = math.floor(int(max_weight) * total_in / top)
    quotas = {a: total * v / total_in for a, v in vals.items()}
    out = {a: math.floor(q) for a, q in quotas.items()}
    left = total - sum(out.values())
    order = sorted(quotas, key=lambda a: quotas[a] - out[a], reverse=True)
    for a in order[:left]:
        out[a] += 1
    return out


def _ident(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_").lower() or "x"


def upstream_names(regions: list[str] | tuple[str, ...], prefix: str = "eqglb_") -> dict[str, str]:
    """Unique NGINX upstream / Envoy-safe identifier of each region."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for r in regions:
        base = prefix + _ident(r)
        name, n = base, 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        out[r] = name
    return out


def cluster_name(address: str) -> str:
    """Envoy cluster name of an upstream address."""
    return "eqglb_" + _ident(address.replace(":", "_"))


def _quote(s: str) -> str:
    """NGINX double-quoted string (names may hold spaces, quotes, braces)."""
    if any(c in s for c in "\r\n\0"):
        raise ValueError(f"name {s!r} holds a line break or NUL; it cannot be an HTTP header value")
    q = s.replace("\\", "\\\\").replace('"', '\\"')
    # map strips one leading backslash: it protects a leading "~" (regex), a leading
    # backslash and the special names
    if s.startswith(("~", "\\")) or s in _NGINX_SPECIAL:
        q = "\\" + q
    return f'"{q}"'


def _comment(s: str) -> str:
    return re.sub(r"[\r\n]", " ", s)


def render_nginx(
    weights: Mapping[str, Mapping[str, int]],
    *,
    header: str = REGION_HEADER,
    include_map: bool = True,
    variable: str = "eqglb_upstream",
    comment: str = "",
) -> str:
    """NGINX configuration (``http {}`` context) of per-region weighted upstreams.

    Parameters
    ----------
    weights : mapping
        ``{region: {"host:port": weight}}``; weights are integers >= 0, passed unchanged
        (no rounding); a 0 is written ``server <address> down;`` (NGINX weights are >= 1)
        and a region without a positive weight gets no upstream, only a comment.
    header : str
        Request header naming the region (used by the ``map``).
    include_map : bool
        Also emit ``map $http_<header> $<variable> { "<region>" <upstream>; }``.
    variable : str
        Name of the variable the map sets (use ``proxy_pass http://$<variable>;``).
    comment : str
        One line written at the top (e.g. the slot the weights come from).

    Returns
    -------
    str
    """
    names = upstream_names(list(weights))
    lines = ["# eqglb: per-region weighted upstreams (generated; do not edit)"]
    if comment:
        lines.append(f"# {_comment(comment)}")
    for region, servers in weights.items():
        given = {a: int(w) for a, w in servers.items()}
        if any(w < 0 for w in given.values()):
            raise ValueError(f"region {region!r}: negative weight in {given!r}")
        pos = {a: w for a, w in given.items() if w > 0}
        lines.append(f"# region {_comment(region)!r}: weights sum to {sum(pos.values())}")
        if not pos:
            lines.append("# (no server with a positive weight)")
            continue
        lines.append(f"upstream {names[region]} {{")
        for addr, w in given.items():
            # NGINX weights are >= 1: a server given weight 0 is marked down
            lines.append(f"    server {addr} weight={w};" if w > 0 else f"    server {addr} down;")
        lines.append("}")
    if include_map:
        var = "$http_" + header.lower().replace("-", "_")
        lines.append(f"map {var} ${variable} {{")
        lines.append('    default "";')
        for region in weights:
            if any(int(w) > 0 for w in weights[region].values()):
                lines.append(f"    {_quote(region)} {names[region]};")
        lines.append("}")
    return "\n".join(lines) + "\n"


def render_envoy(
    weights: Mapping[str, Mapping[str, int]],
    *,
    header: str = REGION_HEADER,
    bootstrap: bool = False,
    name: str = "eqglb",
    listen_port: int = 10000,
) -> dict[str, Any]:
    """Envoy v3 configuration of per-region weighted clusters.

    Parameters
    ----------
    weights : mapping
        ``{region: {"host:port": weight}}`` with positive integer weights.
    header : str
        Request header naming the region (exact match).
    bootstrap : bool
        Return a static bootstrap (listener on ``listen_port`` with the route
        configuration, one STRICT_DNS cluster per address) instead of the
        ``RouteConfiguration`` alone.
    name : str
        Name of the route configuration and virtual host.

    Returns
    -------
    dict (JSON-ready)
    """
    routes = []
    addresses: dict[str, str] = {}  # cluster name -> address
    cnames: dict[str, str] = {}  # address -> cluster name (unique)
    for region, servers in weights.items():
        pos = {a: int(w) for a, w in servers.items() if int(w) > 0}
        if not pos:
            continue
        clusters = []
        for addr, w in pos.items():
            if addr not in cnames:
                base = cname = cluster_name(addr)
                n = 2
                while cname in addresses:
                    cname, n = f"{base}_{n}", n + 1
                cnames[addr] = cname
                addresses[cname] = addr
            cname = cnames[addr]
            clusters.append({"name": cname, "weight": w})
        routes.append(
            {
                "name": f"region {region}",
                "match": {
                    "prefix": "/",
                    "headers": [{"name": header.lower(), "string_match": {"exact": region}}],
                },
                "route": {"weighted_clusters": {"clusters": clusters}},
            }
        )
    route_config = {
        "name": name,
        "virtual_hosts": [{"name": name, "domains": ["*"], "routes": routes}],
    }
    if not bootstrap:
        return route_config
    clusters_cfg = []
    for cname, addr in addresses.items():
        host, _, port = addr.rpartition(":")
        clusters_cfg.append(
            {
                "name": cname,
                "type": "STRICT_DNS",
                "connect_timeout": "1s",
                "lb_policy": "ROUND_ROBIN",
                "load_assignment": {
                    "cluster_name": cname,
                    "endpoints": [
                        {
                            "lb_endpoints": [
                                {
                                    "endpoint": {
                                        "address": {
                                            "socket_address": {
                                                "address": host.strip("[]"),
                                                "port_value": int(port),
                                            }
                                        }
                                    }
                                }
                            ]
                        }
                    ],
                },
            }
        )
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager"
        ".v3.HttpConnectionManager",
        "stat_prefix": name,
        "route_config": route_config,
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    return {
        "static_resources": {
            "listeners": [
                {
                    "name": name,
                    "address": {
                        "socket_address": {"address": "0.0.0.0", "port_value": int(listen_port)}
                    },
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": hcm,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": clusters_cfg,
        }
    }


# --------------------------------------------------------------------------- HAProxy
_HAPROXY_NAME = re.compile(r"[^A-Za-z0-9._:-]")


def haproxy_server_name(address: str) -> str:
    """HAProxy server name of an upstream address: the address itself, with characters
    HAProxy does not allow in names (``[``, ``]`` of IPv6 literals) written ``_``."""
    return _HAPROXY_NAME.sub("_", address) or "_"


def _haproxy_quote(s: str) -> str:
    """One HAProxy configuration word holding exactly ``s``."""
    if any(c in s for c in "\r\n\0"):
        raise ValueError(f"name {s!r} holds a line break or NUL; it cannot be an HTTP header value")
    if "'" not in s:
        return f"'{s}'"  # strong quoting: nothing inside is special
    # weak quoting: escape the backslash, the double quote and '$' (environment variables)
    return '"' + re.sub(r'([\\"$])', r"\\\1", s) + '"'


def _haproxy_table(
    weights: Mapping[str, Mapping[str, float]], all_servers: bool
) -> dict[str, dict[str, int]]:
    every: dict[str, None] = {}
    for servers in weights.values():
        every.update(dict.fromkeys(servers))
    out = {}
    for region, servers in weights.items():
        row = rescale_weights(servers, HAPROXY_MAX_WEIGHT)
        if all_servers:
            row.update({a: 0 for a in every if a not in row})
        out[region] = row
    return out


def render_haproxy(
    weights: Mapping[str, Mapping[str, float]],
    *,
    header: str = REGION_HEADER,
    complete: bool = True,
    bind: str = "127.0.0.1:8080",
    stats_socket: str | None = None,
    all_servers: bool = True,
    name: str = "eqglb",
    comment: str = "",
) -> str:
    """HAProxy configuration of per-region weighted backends.

    Parameters
    ----------
    weights : mapping
        ``{region: {"host:port": weight}}``, weights >= 0; rescaled to HAProxy's 0-256
        by :func:`rescale_weights` where they do not fit (share error < 1/256).
    header : str
        Request header naming the region (matched exactly, case-sensitive, the whole
        field value: ``req.fhdr``).
    complete : bool
        Emit ``global`` and ``defaults`` sections too (a configuration ``haproxy -f``
        runs alone); otherwise only the ``frontend`` and ``backend`` sections, for a
        second ``-f`` file after the operator's own ``global`` and ``defaults`` (which
        must set ``mode http``).
    bind : str
        Address the frontend listens on.
    stats_socket : str, optional
        With ``complete``: a UNIX socket path for the runtime API (``level admin``, what
        :func:`push_haproxy_weights` needs).
    all_servers : bool
        Declare every address of the table in every backend (weight 0 where the region
        does not use it), so that later weights can move traffic anywhere through the
        runtime API without a reload.
    name : str
        Name of the frontend (and prefix of the fallback backend).
    comment : str
        One line written at the top.

    Returns
    -------
    str

    Notes
    -----
    A region whose servers all have weight 0 still gets its backend (HAProxy answers
    503 until a weight is raised); a request without a known region gets 400. Backend
    names are :func:`upstream_names` of the regions, server names
    :func:`haproxy_server_name` of the addresses. HAProxy resolves host names when it
    starts, so they must resolve there (or use IP addresses).
    """
    if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", header):
        raise ValueError(f"header {header!r}: give letters, digits and '-'")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise ValueError(f"name {name!r}: give letters, digits, '_', '.', '-'")
    table = _haproxy_table(weights, all_servers)
    names = upstream_names(list(weights))
    lines = ["# eqglb: per-region weighted backends (generated; do not edit)"]
    if comment:
        lines.append(f"# {_comment(comment)}")
    if complete:
        lines.append("global")
        if stats_socket is not None:
            if any(c.isspace() or c in "'\"\\#$" for c in str(stats_socket)):
                raise ValueError(f"stats socket path {stats_socket!r} holds a space or a quote")
            lines.append(f"    stats socket {stats_socket} mode 600 level admin")
        lines += [
            "defaults",
            "    mode http",
            "    timeout connect 5s",
            "    timeout client 60s",
            "    timeout server 60s",
        ]
    lines += [f"frontend {name}", f"    bind {bind}"]
    for n, region in enumerate(weights):
        lines.append(
            f"    acl eqglb_region_{n} req.fhdr({header}) -m str -- {_haproxy_quote(region)}"
        )
    for n, region in enumerate(weights):
        lines.append(f"    use_backend {names[region]} if eqglb_region_{n}")
    # '-' keeps it apart from the region backends (upstream_names uses [a-z0-9_])
    lines += [
        f"    default_backend {name}-unknown-region",
        f"backend {name}-unknown-region",
        "    http-request deny deny_status 400",
    ]
    for region, row in table.items():
        lines.append(f"# region {_comment(region)!r}: weights sum to {sum(row.values())}")
        lines += [f"backend {names[region]}", "    balance roundrobin"]
        for addr, w in row.items():
            lines.append(f"    server {haproxy_server_name(addr)} {addr} weight {w}")
    return "\n".join(lines) + "\n"


from eqglb.errors import HAProxyRuntimeError  # noqa: E402  (one errors module)


def _haproxy_command(socket_path: str | Path, command: str, timeout: float) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(socket_path))
        s.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def push_haproxy_weights(
    socket_path: str | Path,
    backend: str,
    weights: Mapping[str, float],
    *,
    zero_others: bool = True,
    timeout: float = 5.0,
) -> dict[str, int]:
    """Set a backend's server weights through HAProxy's runtime API (no reload).

    Sends ``set server <backend>/<server> weight N`` over the stats socket (which needs
    ``level admin``), one command per server, then reads every weight back with ``get
    weight``. The weights are applied one server after the other, not atomically.

    Parameters
    ----------
    socket_path : str or Path
        The UNIX stats socket (``stats socket <path> level admin``).
    backend : str
        Backend name (``upstream_names(regions)[region]`` for a rendered config).
    weights : mapping
        ``{address or server name: weight}``, weights >= 0, rescaled to 0-256 as
        :func:`render_haproxy` does.
    zero_others : bool
        Servers of the backend not in ``weights`` get weight 0 (the mapping is the whole
        split, as :meth:`Engine.weights_table` omits zero weights).
    timeout : float
        Socket timeout per command [s].

    Returns
    -------
    dict ``{server name: weight}`` as HAProxy reports it afterwards.

    Raises
    ------
    HAProxyRuntimeError
        An unknown backend or server, a static load-balancing algorithm, or any other
        answer that is not empty.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.:-]+", backend):
        raise ValueError(f"backend name {backend!r}")
    want = {
        haproxy_server_name(a): w for a, w in rescale_weights(weights, HAPROXY_MAX_WEIGHT).items()
    }
    state = _haproxy_command(socket_path, f"show servers state {backend}", timeout)
    rows = [ln.split() for ln in state.splitlines() if ln and not ln.startswith("#")]
    if not rows or rows[0] != ["1"]:
        raise HAProxyRuntimeError(f"show servers state {backend}: {state.strip()!r}")
    present = [r[3] for r in rows[1:] if len(r) > 3]
    if not present:
        raise HAProxyRuntimeError(f"backend {backend!r}: no such backend or no server")
    missing = [s for s in want if s not in present]
    if missing:
        raise HAProxyRuntimeError(
            f"backend {backend!r} has no server {missing} (declared: "
            f"{present}); render the configuration with every "
            "address (all_servers=True) and reload once"
        )
    if zero_others:
        want.update({s: 0 for s in present if s not in want})
    for server, w in want.items():
        ans = _haproxy_command(socket_path, f"set server {backend}/{server} weight {w}", timeout)
        if ans.strip():
            raise HAProxyRuntimeError(f"set server {backend}/{server} weight {w}: {ans.strip()}")
    out = {}
    for server in want:
        ans = _haproxy_command(socket_path, f"get weight {backend}/{server}", timeout)
        m = re.match(r"(\d+) \(initial \d+\)", ans.strip())
        if m is None:
            raise HAProxyRuntimeError(f"get weight {backend}/{server}: {ans.strip()}")
        out[server] = int(m.group(1))
    return out


def push_haproxy_table(
    socket_path: str | Path, weights: Mapping[str, Mapping[str, float]], *, timeout: float = 5.0
) -> dict[str, dict[str, int]]:
    """:func:`push_haproxy_weights` for every region of ``{region: {address: weight}}``
    (the whole table, as ``GET /v1/weights`` gives it: backend names depend on the list
    of regions). Returns ``{region: {server: weight}}``."""
    names = upstream_names(list(weights))
    return {
        region: push_haproxy_weights(socket_path, names[region], servers, timeout=timeout)
        for region, servers in weights.items()
    }


# ---------------------------------------------------------------------- Gateway API
_DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
#: Most rules in one HTTPRoute (Gateway API v1 schema).
GATEWAY_MAX_RULES = 16
#: Most backendRefs in one HTTPRoute rule.
GATEWAY_MAX_BACKENDS = 16


def _dns_label(s: str) -> str:
    lab = re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-") or "x"
    if not lab[0].isalpha():
        lab = "svc-" + lab
    if len(lab) > 63:
        lab = lab[:54].rstrip("-") + "-" + hashlib.sha256(s.encode()).hexdigest()[:8]
    return lab


def gateway_backend_ref(address: str) -> dict[str, Any]:
    """Kubernetes Service reference of an upstream address ``host:port``.

    ``<svc>.<namespace>.svc[.<cluster domain>]:port`` (in-cluster DNS) gives that Service
    and namespace; any other host becomes a DNS label (lower case, other characters
    ``-``, ``svc-`` before a leading digit, so ``texas.internal`` -> ``texas-internal``,
    ``10.0.0.5`` -> ``svc-10-0-0-5``): name your Services so, or pass ``services`` to
    :func:`render_gateway`.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address {address!r}: give host:port")
    parts = host.strip("[]").split(".")
    ref: dict[str, Any]
    if (
        len(parts) >= 3
        and parts[2] == "svc"
        and _DNS_LABEL.fullmatch(parts[0])
        and _DNS_LABEL.fullmatch(parts[1])
    ):
        ref = {"name": parts[0], "namespace": parts[1]}
    else:
        ref = {"name": _dns_label(host.strip("[]"))}
    ref["port"] = int(port)
    return ref


def render_gateway(
    weights: Mapping[str, Mapping[str, float]],
    *,
    header: str = REGION_HEADER,
    name: str = "eqglb",
    namespace: str | None = None,
    gateway: str = "eqglb",
    gateway_namespace: str | None = None,
    services: Mapping[str, Mapping[str, Any]] | None = None,
    comment: str = "",
) -> list[dict[str, Any]]:
    """Kubernetes Gateway API ``HTTPRoute`` objects with weighted ``backendRefs``.

    Parameters
    ----------
    weights : mapping
        ``{region: {"host:port": weight}}``, weights >= 0; rescaled to the Gateway API's
        0-1,000,000 where they do not fit (share error < 1e-6).
    header : str
        Request header naming the region (``Exact`` header match).
    name : str
        Route name (a DNS label); with more than 16 regions, routes ``<name>-0``,
        ``<name>-1``, ... of at most 16 rules each (the schema's limit).
    namespace : str, optional
        Namespace of the routes (default: the one ``kubectl`` applies them to).
    gateway, gateway_namespace : str
        The parent ``Gateway``.
    services : mapping, optional
        ``{address: {"name": ..., "namespace": ..., "port": ...}}`` overriding
        :func:`gateway_backend_ref` for some addresses.
    comment : str
        Written as the annotation ``eqglb.io/weights``.

    Returns
    -------
    list of dict (JSON-ready), one per ``HTTPRoute``.

    Notes
    -----
    One rule per region with a positive weight (``backendRefs`` at most 16, the schema's
    limit; a weight 0 is kept as a ``backendRef`` of weight 0, which gets no traffic); a
    region without one gets no rule (its requests match no rule: 404).
    """
    for what, v in (
        ("name", name),
        ("namespace", namespace),
        ("gateway", gateway),
        ("gateway_namespace", gateway_namespace),
    ):
        if v is not None and not _DNS_LABEL.fullmatch(v):
            raise ValueError(f"{what} {v!r}: give a DNS label (a-z, 0-9, '-')")
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,256}", header):
        raise ValueError(f"header {header!r} is not an HTTP header name")
    services = services or {}
    rules = []
    for region, servers in weights.items():
        if not 1 <= len(region) <= 4096 or any(c in region for c in "\r\n\0"):
            raise ValueError(
                f"region {region[:80]!r}: a header value is 1-4096 characters without line breaks"
            )
        row = rescale_weights(servers, GATEWAY_MAX_WEIGHT)
        if not any(row.values()):
            continue
        if len(row) > GATEWAY_MAX_BACKENDS:
            raise ValueError(
                f"region {region!r} has {len(row)} upstreams; an HTTPRoute rule "
                f"holds at most {GATEWAY_MAX_BACKENDS} backendRefs"
            )
        refs = []
        for addr, w in row.items():
            ref = dict(gateway_backend_ref(addr))
            ref.update(services.get(addr, {}))
            refs.append({**ref, "weight": w})
        rules.append(
            {
                "matches": [{"headers": [{"type": "Exact", "name": header, "value": region}]}],
                "backendRefs": refs,
            }
        )
    chunks = [
        rules[i : i + GATEWAY_MAX_RULES] for i in range(0, len(rules), GATEWAY_MAX_RULES)
    ] or [[]]
    parent: dict[str, Any] = {
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": gateway,
    }
    if gateway_namespace is not None:
        parent["namespace"] = gateway_namespace
    out = []
    for n, chunk in enumerate(chunks):
        meta: dict[str, Any] = {
            "name": name if len(chunks) == 1 else f"{name}-{n}"[:63],
            "labels": {"app.kubernetes.io/managed-by": "eqglb"},
        }
        if namespace is not None:
            meta["namespace"] = namespace
        if comment:
            meta["annotations"] = {"eqglb.io/weights": _comment(comment)}
        out.append(
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": meta,
                "spec": {"parentRefs": [parent], "rules": chunk},
            }
        )
    return out
