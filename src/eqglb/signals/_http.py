"""HTTP plumbing shared by the signal clients: retries with backoff, caching, clear errors.

Standard library only (:mod:`urllib.request`), so the clients work with the core install.

- **Retries.** HTTP 429, 500, 502, 503 and 504, connection errors and time-outs are retried
  up to ``max_attempts`` attempts in all, waiting ``backoff * 2**k`` seconds before retry
  ``k + 1`` (capped at ``max_delay``); a ``Retry-After`` header (seconds or an HTTP date)
  replaces the computed wait when it is longer, and one longer than ``max_delay`` stops at
  once with an error saying so (retrying sooner than asked only earns another 429). Other
  4xx answers are not retried: they do not get better by asking again.
- **Caching.** Successful JSON answers are kept in memory for ``cache_ttl`` seconds
  (monotonic clock), and, when ``cache_dir`` is given, in one JSON file per request in that
  folder (wall clock, same TTL), so that a restarted process does not ask again. Cache keys
  leave out secrets (API keys, tokens); cache files hold only the providers' answers.
- **Errors.** Every failure is a :class:`SignalError` naming the provider, the endpoint,
  the field (when one is at fault) and the fix. URLs in messages never carry the API key.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

__all__ = [
    "RETRY_STATUSES",
    "HttpSettings",
    "JsonClient",
    "SignalError",
    "env_value",
]

#: HTTP statuses that are retried (rate limited or a server-side failure).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

Params = Mapping[str, Any] | Sequence[tuple[str, Any]]


from eqglb.errors import EqglbError  # noqa: E402  (the base of every eqglb error)


class SignalError(EqglbError, RuntimeError):
    """A signal provider could not be asked, refused, or answered something unusable.

    The message reads ``<provider> <endpoint>: <problem>; <fix>``; the same facts are kept
    as attributes ``provider``, ``endpoint``, ``field`` (the JSON field at fault, or
    ``None``), ``status`` (the last HTTP status, or ``None``) and ``attempts``.
    """

    def __init__(
        self,
        provider: str,
        endpoint: str,
        problem: str,
        fix: str,
        *,
        field: str | None = None,
        status: int | None = None,
        attempts: int | None = None,
    ) -> None:
        self.provider = provider
        self.endpoint = endpoint
        self.field = field
        self.status = status
        self.attempts = attempts
        where = f"{provider} {endpoint}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {problem}; {fix}")


def env_value(
    provider: str, endpoint: str, value: str | None, env: str, what: str, fix: str
) -> str:
    """``value`` if given, else the environment variable ``env``; a clear error if neither."""
    if value is not None and value != "":
        return value
    got = os.environ.get(env, "")
    if got.strip():
        return got.strip()
    raise SignalError(
        provider,
        endpoint,
        f"no {what}: the environment variable {env} is not set (and none was passed)",
        f"export {env}=... ({fix})",
    )


class HttpSettings:
    """Retry and cache settings of a client (see the module docstring).

    Parameters
    ----------
    timeout : float
        Time-out of one request [s].
    max_attempts : int
        Attempts in all, >= 1 (the first one included).
    backoff : float
        First retry wait [s]; doubled at each further retry.
    max_delay : float
        Longest wait between two attempts [s]; a longer ``Retry-After`` gives up at once.
    cache_ttl : float
        Lifetime of a cached answer [s]; 0 turns caching off.
    cache_dir : path-like or None
        Folder of the on-disk JSON cache (created if missing); ``None``: memory only.
    sleep : callable
        ``sleep(seconds)`` used between attempts (tests pass a recorder).
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        max_attempts: int = 4,
        backoff: float = 0.5,
        max_delay: float = 30.0,
        cache_ttl: float = 300.0,
        cache_dir: str | os.PathLike[str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        for name, v in (
            ("timeout", timeout),
            ("backoff", backoff),
            ("max_delay", max_delay),
            ("cache_ttl", cache_ttl),
        ):
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} is {v!r}; give a finite number of seconds >= 0")
        if int(max_attempts) != max_attempts or max_attempts < 1:
            raise ValueError(f"max_attempts is {max_attempts!r}; give a whole number >= 1")
        self.timeout = float(timeout)
        self.max_attempts = int(max_attempts)
        self.backoff = float(backoff)
        self.max_delay = float(max_delay)
        self.cache_ttl = float(cache_ttl)
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.sleep = sleep


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        secs = (when - datetime.now(UTC)).total_seconds()
    return max(secs, 0.0) if math.isfinite(secs) else None


def _error_text(body: bytes) -> str:
    """A short description of an error body (its ``message``/``error`` field if JSON)."""
    text = body.decode("utf-8", "replace").strip()
    try:
        obj = json.loads(text)
    except ValueError:
        return text[:200]
    if isinstance(obj, dict):
        for key in ("message", "error", "detail", "errors"):
            v = obj.get(key)
            if isinstance(v, dict):
                v = v.get("message", v)
            if v:
                return str(v)[:200]
    return text[:200]


class JsonClient:
    """GET JSON from one provider with retries, caching and clear errors.

    Parameters
    ----------
    provider : str
        Provider name used in messages (e.g. ``"Electricity Maps"``).
    base_url : str
        Scheme, host and optional path prefix (e.g. ``"https://api.eia.gov"``).
    settings : HttpSettings
    secret_params : sequence of str
        Query parameters that hold secrets (left out of cache keys and messages).
    auth_fix : str
        What to tell the operator when the provider answers 401/403.
    """

    def __init__(
        self,
        provider: str,
        base_url: str,
        settings: HttpSettings,
        *,
        secret_params: Sequence[str] = (),
        auth_fix: str = "check the credentials",
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SignalError(
                provider,
                base_url,
                "the base URL is not an http(s) URL",
                "give a URL such as https://host[:port][/prefix]",
            )
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.settings = settings
        self.secret_params = frozenset(secret_params)
        self.auth_fix = auth_fix
        self.requests_sent = 0  # HTTP requests actually sent (cache hits not counted)
        self._memory: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ cache
    def _key(self, endpoint: str, params: list[tuple[str, str]]) -> str:
        public = [(k, v) for k, v in params if k not in self.secret_params]
        return f"GET {self.base_url}{endpoint}?{urllib.parse.urlencode(public)}"

    def _cache_file(self, key: str) -> Path | None:
        d = self.settings.cache_dir
        if d is None:
            return None
        return d / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")

    def _cache_get(self, key: str, ttl: float) -> Any | None:
        if ttl <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            hit = self._memory.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        path = self._cache_file(key)
        if path is None or not path.is_file():
            return None
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
            stored = float(rec["stored_at"])
            if rec["key"] != key:
                return None
            payload = rec["payload"]
        except (OSError, ValueError, KeyError, TypeError):
            return None  # an unreadable cache file is a miss; it is rewritten below
        age = time.time() - stored
        if not 0 <= age < ttl:
            return None
        with self._lock:
            self._memory[key] = (now + ttl - age, payload)
        return payload

    def _cache_put(self, key: str, ttl: float, payload: Any) -> None:
        if ttl <= 0:
            return
        with self._lock:
            self._memory[key] = (time.monotonic() + ttl, payload)
        path = self._cache_file(key)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
            tmp.write_text(
                json.dumps({"key": key, "stored_at": time.time(), "payload": payload}),
                encoding="utf-8",
            )
            os.replace(tmp, path)
        except OSError as exc:
            raise SignalError(
                self.provider,
                key.split("?")[0][4:],
                f"cannot write the cache file {path} ({exc})",
                "give a writable cache_dir or none",
            ) from exc

    def clear_cache(self) -> None:
        """Forget the in-memory cache (files in ``cache_dir`` stay)."""
        with self._lock:
            self._memory.clear()

    # ------------------------------------------------------------------ requests
    def get_json(
        self,
        endpoint: str,
        params: Params | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        cache: bool = True,
        ttl: float | None = None,
        on_auth_failure: Callable[[], Mapping[str, str]] | None = None,
    ) -> Any:
        """GET ``base_url + endpoint`` and return the decoded JSON.

        Parameters
        ----------
        endpoint : str
            Path after the base URL, e.g. ``"/v3/carbon-intensity/latest"``.
        params : mapping or sequence of pairs
            Query parameters (a sequence keeps repeated keys such as ``facets[x][]``).
        headers : mapping
            Request headers (authentication included).
        cache : bool
            Look up and store the answer in the caches.
        ttl : float or None
            This call's cache lifetime [s] (default the settings' ``cache_ttl``).
        on_auth_failure : callable or None
            Called once on HTTP 401; returns fresh headers for one more try (a token
            login); without it a 401 is an error at once.

        Raises
        ------
        SignalError
            Refused credentials (401/403), another 4xx, a body that is not JSON, or no
            success after ``max_attempts`` attempts.
        """
        items = list(params.items()) if isinstance(params, Mapping) else list(params or [])
        qs = [(str(k), str(v)) for k, v in items]
        ttl = self.settings.cache_ttl if ttl is None else float(ttl)
        key = self._key(endpoint, qs)
        if cache:
            hit = self._cache_get(key, ttl)
            if hit is not None:
                return hit
        url = self.base_url + endpoint + ("?" + urllib.parse.urlencode(qs) if qs else "")
        hdrs = {"Accept": "application/json", "User-Agent": "eqglb-signals", **(headers or {})}
        s = self.settings
        last = ""
        last_status: int | None = None
        reauthed = False
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                with self._lock:
                    self.requests_sent += 1
                req = urllib.request.Request(url, headers=hdrs, method="GET")
                with urllib.request.urlopen(req, timeout=s.timeout) as resp:
                    body = resp.read()
                    status = resp.status
            except urllib.error.HTTPError as exc:
                status = exc.code
                try:
                    body = exc.read() if exc.fp is not None else b""
                finally:
                    exc.close()
                last_status = status
                if status == 401 and on_auth_failure is not None and not reauthed:
                    reauthed = True
                    hdrs = {**hdrs, **on_auth_failure()}
                    attempt -= 1  # a re-login is not a failed attempt
                    continue
                if status in (401, 403):
                    raise SignalError(
                        self.provider,
                        endpoint,
                        f"HTTP {status}: the credentials were refused ({_error_text(body)})",
                        self.auth_fix,
                        status=status,
                        attempts=attempt,
                    ) from None
                if status not in RETRY_STATUSES:
                    raise SignalError(
                        self.provider,
                        endpoint,
                        f"HTTP {status}: {_error_text(body)}",
                        "check the query (zone/region code, times, "
                        "parameters) against the provider's documentation",
                        status=status,
                        attempts=attempt,
                    ) from None
                last = f"HTTP {status} ({_error_text(body)})"
                wait = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            except (
                urllib.error.URLError,
                TimeoutError,
                ConnectionError,
                http.client.HTTPException,
            ) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"connection failed ({reason})"
                last_status = None
            else:
                try:
                    payload = json.loads(body.decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    raise SignalError(
                        self.provider,
                        endpoint,
                        f"HTTP {status} answer is not JSON ({body[:80]!r})",
                        "check the base URL (it must point at the API, not a web page or proxy)",
                        status=status,
                        attempts=attempt,
                    ) from None
                if cache:
                    self._cache_put(key, ttl, payload)
                return payload
            if attempt >= s.max_attempts:
                raise SignalError(
                    self.provider,
                    endpoint,
                    f"gave up after {attempt} attempt(s); last: {last}",
                    "retry later, raise max_attempts, or check the base URL "
                    f"{self.base_url} and the network",
                    status=last_status,
                    attempts=attempt,
                )
            if wait is not None and wait > s.max_delay:
                raise SignalError(
                    self.provider,
                    endpoint,
                    f"{last}: the provider asks to retry after {wait:g} s, "
                    f"longer than max_delay={s.max_delay:g} s",
                    "retry later or raise max_delay",
                    status=last_status,
                    attempts=attempt,
                )
            delay = min(s.backoff * 2 ** (attempt - 1), s.max_delay)
            if wait is not None:
                delay = max(delay, wait)
            s.sleep(delay)


def as_utc(value: Any, provider: str, endpoint: str, what: str = "time") -> datetime:
    """A time argument (datetime, pandas Timestamp or ISO 8601 text; naive = UTC) in UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise SignalError(
                provider,
                endpoint,
                f"{what} {value!r} is not an ISO 8601 time",
                "give e.g. '2024-05-01T13:00:00Z'",
            ) from None
    if not isinstance(value, datetime):
        raise SignalError(
            provider,
            endpoint,
            f"{what} {value!r} is not a time",
            "give a datetime or ISO 8601 text",
        )
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def iso_z(t: datetime) -> str:
    """``2024-05-01T13:00:00Z`` (UTC, whole seconds)."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any, provider: str, endpoint: str, field: str) -> datetime:
    """A time stamp of an answer (ISO 8601 text) in UTC, or a clear error naming the field."""
    if not isinstance(value, str):
        raise SignalError(
            provider,
            endpoint,
            f"time stamp is {value!r}, not ISO 8601 text",
            "the answer does not follow the provider's documented format; "
            "check the base URL and API version",
            field=field,
        )
    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise SignalError(
            provider,
            endpoint,
            f"time stamp {value!r} does not parse",
            "the answer does not follow the provider's documented format; "
            "check the base URL and API version",
            field=field,
        ) from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def number(
    value: Any, provider: str, endpoint: str, field: str, *, allow_none: bool = False
) -> float | None:
    """A finite number of an answer (numbers given as text accepted), or a clear error."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or value is None:
        v = math.nan
    else:
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = math.nan
    if not math.isfinite(v):
        raise SignalError(
            provider,
            endpoint,
            f"value {value!r} is not a finite number",
            "the provider returned no usable value for this time; ask for another time or zone",
            field=field,
        )
    return v


def field_of(obj: Any, name: str, provider: str, endpoint: str, where: str = "") -> Any:
    """``obj[name]``, or a clear error naming the missing field."""
    if not isinstance(obj, dict) or name not in obj:
        got = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise SignalError(
            provider,
            endpoint,
            f"the answer{where} has no field {name!r} (found: {got})",
            "check the base URL and API version against the provider's documentation",
            field=name,
        )
    return obj[name]
