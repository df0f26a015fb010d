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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REGION_HEADER", "cluster_name", "render_envoy", "render_nginx", "upstream_names"]

#: Request header that names the user region of a request.
REGION_HEADER = "X-EqGLB-Region"
_NGINX_SPECIAL = {"default", "hostnames", "include", "volatile"}


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
        raise ValueError(f"name {s!r} holds a line break or NUL; it cannot be an HTTP header "
                         "value")
    q = s.replace("\\", "\\\\").replace('"', '\\"')
    # map strips one leading backslash: it protects a leading "~" (regex), a leading
    # backslash and the special names
    if s.startswith(("~", "\\")) or s in _NGINX_SPECIAL:
        q = "\\" + q
    return f'"{q}"'


def _comment(s: str) -> str:
    return re.sub(r"[\r\n]", " ", s)


def render_nginx(weights: Mapping[str, Mapping[str, int]], *, header: str = REGION_HEADER,
                 include_map: bool = True, variable: str = "eqglb_upstream",
                 comment: str = "") -> str:
    """NGINX configuration (``http {}`` context) of per-region weighted upstreams.

    Parameters
    ----------
    weights : mapping
        ``{region: {"host:port": weight}}``; weights are positive integers (a region
        without one gets no upstream and a comment).
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
        pos = {a: int(w) for a, w in servers.items() if int(w) > 0}
        lines.append(f"# region {_comment(region)!r}: weights sum to {sum(pos.values())}")
        if not pos:
            lines.append("# (no server with a positive weight)")
            continue
        lines.append(f"upstream {names[region]} {{")
        for addr, w in pos.items():
            lines.append(f"    server {addr} weight={w};")
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


def render_envoy(weights: Mapping[str, Mapping[str, int]], *, header: str = REGION_HEADER,
                 bootstrap: bool = False, name: str = "eqglb", listen_port: int = 10000
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
    addresses: dict[str, str] = {}     # cluster name -> address
    cnames: dict[str, str] = {}        # address -> cluster name (unique)
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
        routes.append({
            "name": f"region {region}",
            "match": {"prefix": "/", "headers": [
                {"name": header.lower(), "string_match": {"exact": region}}]},
            "route": {"weighted_clusters": {"clusters": clusters}},
        })
    route_config = {"name": name, "virtual_hosts": [
        {"name": name, "domains": ["*"], "routes": routes}]}
    if not bootstrap:
        return route_config
    clusters_cfg = []
    for cname, addr in addresses.items():
        host, _, port = addr.rpartition(":")
        clusters_cfg.append({
            "name": cname, "type": "STRICT_DNS", "connect_timeout": "1s",
            "lb_policy": "ROUND_ROBIN",
            "load_assignment": {"cluster_name": cname, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {
                    "address": host.strip("[]"), "port_value": int(port)}}}}]}]},
        })
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager"
                 ".v3.HttpConnectionManager",
        "stat_prefix": name, "route_config": route_config,
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    }
    return {"static_resources": {
        "listeners": [{"name": name, "address": {"socket_address": {
            "address": "0.0.0.0", "port_value": int(listen_port)}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": hcm}]}]}],
        "clusters": clusters_cfg}}
