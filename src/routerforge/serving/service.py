"""The routing service shared by the HTTP proxy and the ExtProc server: a Router behind a micro-batcher, the
router config, Prometheus metrics, and hot reload.

>>> service = RouterService.load("runs/local-data/bundle", "router.yaml")
>>> async with service:                                    # starts the batcher on this event loop
...     decision = await service.decide({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})

``reload()`` builds the new Router and config first, then swaps one reference: a request decides with the
config it started with, and its texts are classified by whichever Router is current when its batch runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..errors import RouterforgeError
from ..runtime.batcher import MicroBatcher, QueueFull, TooManyTexts, TooMuchWork
from ..runtime.signals import Signals
from .config import RouterConfig, load_router_config
from .inspect import Refused
from .policy import Decision, TextKey, decide, texts_to_check
from .signal_cache import SignalCache
from .workers import supervised

log = logging.getLogger(__name__)

# Finer around 100 ms, the admission limit's scale, so that a p99 there can be read off the histogram
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """Every series the service and the proxy export, in the service's own registry (tests build several)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "routerforge_requests", "HTTP requests by endpoint and status", ["endpoint", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "routerforge_request_seconds",
            "HTTP request latency by endpoint",
            ["endpoint"],
            buckets=_SECONDS,
            registry=r,
        )
        self.decisions = Counter(
            "routerforge_decisions", "routing decisions", ["category", "model", "action"], registry=r
        )
        self.blocks = Counter("routerforge_blocks", "blocked requests by reason", ["reason"], registry=r)
        self.classify_seconds = Histogram(
            "routerforge_classification_seconds",
            "classification latency per request, queueing included",
            buckets=_SECONDS,
            registry=r,
        )
        self.batch_size = Histogram(
            "routerforge_batch_size", "texts per encoder call", buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r
        )
        self.upstream_seconds = Histogram(
            "routerforge_upstream_seconds",
            "upstream latency (to the response headers when streaming)",
            ["backend"],
            buckets=_SECONDS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "routerforge_upstream_errors", "failed upstream calls", ["backend", "kind"], registry=r
        )
        # under `serve --workers N` (prometheus_client's multiprocess mode) the workers' depths are summed
        self.queue_depth = Gauge(
            "routerforge_queue_depth", "texts waiting for classification", registry=r, multiprocess_mode="livesum"
        )
        self.reloads = Counter("routerforge_reloads", "reloads by outcome", ["outcome"], registry=r)
        self.classification_failures = Counter(
            "routerforge_classification_failures", "classifications that failed, by kind (error | timeout)", ["kind"],
            registry=r,
        )  # fmt: skip
        self.fail_open = Counter(
            "routerforge_fail_open", "requests forwarded with a check skipped under fail_mode open", ["check"],
            registry=r,
        )  # fmt: skip
        self.admission_refused = Counter(
            "routerforge_admission_refused",
            "requests refused before classification (queue_full: 429, too_much_work / too_many_texts: 413)",
            ["reason"],
            registry=r,
        )
        self.texts_too_long = Counter(
            "routerforge_texts_too_long", "checked texts the classifier could not read whole (request refused: 413)",
            registry=r,
        )  # fmt: skip
        self.refused = Counter(
            "routerforge_refused", "requests refused for what they hold (unknown role, part, field...), by code",
            ["code"], registry=r,
        )  # fmt: skip
        self.signal_cache = Counter(
            "routerforge_signal_cache", "checked texts answered from the signal cache (hit) or classified (miss)",
            ["result"], registry=r,
        )  # fmt: skip

    def record(self, decision: Decision) -> None:
        """Count one decision: by category, model and action; its block reason, fail-open checks, long texts."""
        model = decision.model if decision.backend is not None else "unknown"  # bounded label values
        self.decisions.labels(decision.category or "none", model, decision.action).inc()
        if decision.block_reason is not None:
            self.blocks.labels(decision.block_reason).inc()
        for check in decision.failed_open:
            self.fail_open.labels(check).inc()
        if decision.truncated:
            self.texts_too_long.inc(decision.truncated)

    def admission(self, err: Exception) -> None:
        """Count one request refused by admission control."""
        reasons: dict[type, str] = {TooMuchWork: "too_much_work", TooManyTexts: "too_many_texts"}
        reason = reasons.get(type(err), "queue_full")
        self.admission_refused.labels(reason).inc()


@dataclass(frozen=True)
class Loaded:
    """One consistent generation of what a reload replaces."""

    router: object  # runtime.engine.Router, or anything with classify_batch(texts) and heads
    config: RouterConfig
    auth_token: str | None
    cache: SignalCache  # this generation's signals of recent texts: a reload starts empty

    @classmethod
    def of(cls, router, config: RouterConfig) -> Loaded:
        """A generation of ``router`` and ``config``, its token read and its cache empty."""
        return cls(router, config, client_token(config), SignalCache(config.server.signal_cache))


@dataclass
class Checked:
    """A request with its texts classified: decide once, and again for a fallback's model without
    classifying twice."""

    request: dict
    config: RouterConfig
    signals: dict[TextKey, Signals]
    failed: bool

    def decide(self, target: str | None = None) -> Decision:
        """The routing decision for the checked texts."""
        return decide(self.signals, self.request, self.config, failed=self.failed, target=target)


class RouterService:
    """What the proxy and ExtProc share: config, bundle, batcher, metrics, reload."""

    def __init__(
        self,
        router,
        config: RouterConfig,
        *,
        bundle_path: str | Path | None = None,
        config_path: str | Path | None = None,
        backend: str | None = None,
        threads: int | None = None,
        bundle_from_config: bool = False,
    ):
        self.bundle_path = Path(bundle_path) if bundle_path is not None else None
        # True when the bundle is the config's (no BUNDLE argument): a reload then follows the config's 'bundle'
        self.bundle_from_config = bundle_from_config
        self.config_path = Path(config_path) if config_path is not None else None
        self.backend, self.threads = backend, threads
        self._loaded = Loaded.of(router, config)
        self._reload_lock = threading.Lock()
        self._reloading: set[asyncio.Task] = set()  # the event loop keeps only weak references to tasks
        self.metrics = Metrics()
        server = config.server
        self.batcher = MicroBatcher(
            self._classify_batch, server.max_batch_size, server.max_wait_ms, server.queue_size, server.max_batch_chars
        )
        self._worker_process = supervised()  # under `serve --workers`: the gauge is a shared file, set per batch
        if not self._worker_process:
            self.metrics.queue_depth.set_function(lambda: self.batcher.depth)
        _warn_heads(router, config)

    @classmethod
    def load(
        cls,
        bundle: str | Path | None,
        config_path: str | Path,
        *,
        backend: str | None = None,
        threads: int | None = None,
    ) -> RouterService:
        """Read the config, then the bundle (``bundle``, else the config's ``bundle``)."""
        from ..runtime.engine import Router

        config = load_router_config(config_path)
        path = _bundle_path(bundle, config, config_path)
        router = Router.load(path, backend, threads=threads, recognizers=config.pii.recognizers)
        return cls(
            router,
            config,
            bundle_path=path,
            config_path=config_path,
            backend=backend,
            threads=threads,
            bundle_from_config=bundle is None,
        )

    # -- what a generation holds ------------------------------------------------------------------------------

    @property
    def router(self):
        """The loaded bundle's runtime."""
        return self._loaded.router

    @property
    def config(self) -> RouterConfig:
        """The router config in force."""
        return self._loaded.config

    @property
    def auth_token(self) -> str | None:
        """The bearer token clients must send (None: no auth)."""
        return self._loaded.auth_token

    @property
    def ready(self) -> bool:
        """Whether the bundle is loaded and the batcher runs."""
        return self.batcher.running

    # -- lifecycle ----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the micro-batcher."""
        await self.batcher.start()

    async def stop(self) -> None:
        """Stop the micro-batcher (in-flight calls finish)."""
        await self.batcher.stop()

    async def __aenter__(self) -> RouterService:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # -- classification and decisions --------------------------------------------------------------------------

    def _classify_batch(self, texts: list[str]) -> list[Signals]:
        self.metrics.batch_size.observe(len(texts))
        if self._worker_process:
            self.metrics.queue_depth.set(self.batcher.depth)
        return self.router.classify_batch(texts)

    def too_busy(self) -> bool:
        """Admission before the body is read: the queue ahead already exceeds ``server.max_queue_ms``."""
        limit = self.config.server.max_queue_ms
        if limit is None or not self.batcher.too_busy(limit / 1000):
            return False
        self.metrics.admission(QueueFull("queue ahead"))
        return True

    async def classify(self, texts: list[str]) -> list[Signals]:
        """Signals through the batcher: QueueFull when it is full or the work ahead would make ``texts`` late,
        TooMuchWork / TooManyTexts when they could never make it (admission counted in metrics), TimeoutError
        past ``classify_timeout_s``."""
        started = time.perf_counter()
        timeout = self.config.server.classify_timeout_s
        try:
            async with asyncio.timeout(timeout):
                limit = self.config.server.max_queue_ms
                signals = await self.batcher.submit(
                    texts, deadline_s=timeout, max_queue_s=None if limit is None else limit / 1000
                )
        except (QueueFull, TooManyTexts, TooMuchWork) as err:
            self.metrics.admission(err)
            raise
        self.metrics.classify_seconds.observe(time.perf_counter() - started)
        return signals

    def admit_body(self, raw: bytes, config: RouterConfig) -> None:
        """Refuse (TooMuchWork: 413) before parsing a body whose size alone, read as text, could not be checked
        within ``classify_timeout_s``: an attacker's refused requests must not cost a JSON parse each. Only for
        bodies with no part type forwarded unread (an image's bytes are no text to check); a body's bytes bound
        its texts' characters from above, so a body padded with unread fields (``stop``, ``logit_bias``) is
        the one that could be refused wrongly."""
        timeout = config.server.classify_timeout_s
        if any(f'"{kind}"'.encode() in raw for kind in config.checks.skip_part_types):
            return
        if (estimate := self.batcher.estimate_alone_s(len(raw))) > timeout:
            err = TooMuchWork(
                f"this request holds more text than can be checked within {timeout:g} s "
                f"(about {estimate:.1f} s on an idle server); send less text per request"
            )
            self.metrics.admission(err)
            raise err

    async def check(self, request: dict, config: RouterConfig | None = None, *, offload: bool = False) -> Checked:
        """Classify the texts the policy reads; a failure (not an overload) becomes ``failed=True``.

        Refused (400/413) for a request holding something no check reads (serving/inspect.py). ``config``: the
        generation the caller already validated the request against (default: the current one), so a reload in
        between cannot make the request decide under another config. ``offload``: inspect in a thread (a large
        body would hold the event loop).
        """
        config = config or self.config
        try:
            texts = (
                await asyncio.to_thread(texts_to_check, request, config) if offload else texts_to_check(request, config)
            )
        except Refused as err:
            self.metrics.refused.labels(err.code).inc()
            raise
        try:
            signals = await self._signals(texts) if texts else {}
        except (QueueFull, TooManyTexts, TooMuchWork):
            raise
        except Exception as err:  # noqa: BLE001 - any classifier failure is what fail_mode is for
            kind = "timeout" if isinstance(err, TimeoutError) else "error"
            self.metrics.classification_failures.labels(kind).inc()
            modes = {check: config.fail_mode_of(check) for check in ("jailbreak", "pii")}
            log.warning("classification failed (%s: %s); fail_mode=%s", kind, type(err).__name__, modes)
            return Checked(request, config, {}, True)
        return Checked(request, config, signals, False)

    async def _signals(self, texts: dict[TextKey, str]) -> dict[TextKey, Signals]:
        """Each text's signals: from this generation's cache, else classified (each distinct text once)."""
        cache = self._loaded.cache
        distinct = list(dict.fromkeys(texts.values()))
        known = {text: found for text in distinct if (found := cache.get(text)) is not None}
        missing = [text for text in distinct if text not in known]
        if known:
            self.metrics.signal_cache.labels("hit").inc(len(known))
        if missing:
            for text, found in zip(missing, await self.classify(missing)):
                cache.put(text, found)
                known[text] = found
            self.metrics.signal_cache.labels("miss").inc(len(missing))
        return {key: known[text] for key, text in texts.items()}

    async def decide(self, request: dict, *, offload: bool = False) -> Decision:
        """The routing decision for one chat completions body (what the ExtProc server calls)."""
        checked = await self.check(request, offload=offload)
        decision = await asyncio.to_thread(checked.decide) if offload else checked.decide()
        self.metrics.record(decision)
        if decision.failed_open:
            log.warning("forwarded with checks skipped (fail_mode open): %s", ", ".join(decision.failed_open))
        return decision

    # -- reload -------------------------------------------------------------------------------------------------

    def reload(self, config_path: str | Path | None = None, bundle_path: str | Path | None = None) -> None:
        """Re-read the config and the bundle (blocking: run it in a thread); on error nothing changes.

        The bundle: ``bundle_path``, else the one served now, unless it came from the config's ``bundle`` (no
        BUNDLE argument at start), in which case the re-read config's ``bundle`` names it.
        """
        from ..runtime.engine import Router

        with self._reload_lock:
            try:
                config_path = Path(config_path) if config_path is not None else self.config_path
                config = load_router_config(config_path) if config_path is not None else self.config
                bundle = Path(bundle_path) if bundle_path is not None else self.bundle_path
                if bundle_path is None and self.bundle_from_config and config.bundle is not None:
                    bundle = _bundle_path(None, config, config_path)  # hf: bundles: a new revision is fetched
                if bundle is None:
                    raise RouterforgeError("no bundle to reload", hint="pass bundle_path")
                router = Router.load(bundle, self.backend, threads=self.threads, recognizers=config.pii.recognizers)
                loaded = Loaded.of(router, config)
            except Exception:
                self.metrics.reloads.labels("failed").inc()
                raise
            _warn_heads(router, config)
            self._loaded = loaded  # the swap: one reference
            self.config_path, self.bundle_path = config_path, bundle
            server = config.server
            self.batcher.max_batch_size, self.batcher.max_wait_ms = server.max_batch_size, server.max_wait_ms
            self.batcher.queue_size, self.batcher.max_batch_work = server.queue_size, server.max_batch_chars
            self.metrics.reloads.labels("ok").inc()
            log.info(
                "reloaded: bundle=%s backend=%s config=%s", bundle, getattr(router, "backend_name", "-"), config_path
            )

    async def reload_async(self) -> None:
        """:meth:`reload` off the event loop. A failure is logged (the file's complaint, or the exception's type:
        its message might quote anything) and raised as a RouterforgeError; the previous generation keeps
        serving."""
        try:
            await asyncio.to_thread(self.reload)
        except Exception as err:  # noqa: BLE001 - a bad file must not take the server down
            why = str(err) if isinstance(err, RouterforgeError) else type(err).__name__
            log.error("reload failed, still serving the previous bundle and config: %s", why)
            raise RouterforgeError(f"reload failed: {why}") from None

    def reload_on_signal(self) -> None:
        """SIGHUP handler for a running event loop: reload in a task; a failure is logged by :meth:`reload_async`."""
        task = asyncio.get_running_loop().create_task(self._reload_logged())
        self._reloading.add(task)
        task.add_done_callback(self._reloading.discard)

    async def _reload_logged(self) -> None:
        with contextlib.suppress(RouterforgeError):
            await self.reload_async()


def client_token(config: RouterConfig) -> str | None:
    """The bearer token clients must send; a configured but empty variable is an error, never open access."""
    name = config.server.auth_token_env
    if name is None:
        return None
    token = os.environ.get(name)
    if not token:
        raise RouterforgeError(
            f"server.auth_token_env names {name}, which is not set",
            hint=f"export {name}=<token>, or remove auth_token_env to serve without auth",
        )
    return token


def _bundle_path(bundle, config: RouterConfig, config_path) -> Path:
    """The bundle directory (an ``hf:ORG/NAME`` bundle is downloaded first: routerforge.hub)."""
    from ..hub import resolve_bundle

    if bundle is not None:
        return resolve_bundle(bundle)
    if config.bundle is None:
        raise RouterforgeError("no bundle: pass BUNDLE or set 'bundle' in the router config", source=str(config_path))
    return resolve_bundle(config.bundle)


def _warn_heads(router, config: RouterConfig) -> None:
    heads = getattr(router, "heads", {})
    labels = heads.get("category", {}).get("label_names")
    for warning in config.check_heads(set(heads), labels, heads.get("selector", {}).get("label_names")):
        log.warning("%s", warning)
