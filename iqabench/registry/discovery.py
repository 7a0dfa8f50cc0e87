"""Discovery of plugins through the ``iqabench`` entry-point group.

Built-in plugins live in ``plugins/`` (installed as ``iqabench_plugins``) and
register through the very same entry-point group a third-party package uses,
so the core never names a particular model, dataset or trainer.

A broken plugin never stops the harness: one that fails to import, that
implements a hook iqabench does not have (``iqabench_model`` for
``iqabench_models``), whose hook raises, or that returns a class that does not
fulfil its contract is skipped with a warning naming it, and the reason is kept
in :attr:`PluginRegistry.load_failures` for ``iqabench list``.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import pluggy

from iqabench.contracts import hookspecs
from iqabench.contracts.rules import class_problems
from iqabench.errors import DuplicateNameError, PluginError, UnknownNameError, did_you_mean

ENTRY_POINT_GROUP = "iqabench"
KINDS = ("model", "dataset", "trainer", "converter")
HOOKS = tuple(name for name in dir(hookspecs) if name.startswith("iqabench_"))


@dataclass(frozen=True)
class Entry:
    """A registered class, the plugin that provided it, and the package that installed that plugin."""

    name: str
    kind: str
    cls: type
    plugin: str
    distribution: str | None = None
    version: str | None = None

    def describe(self) -> dict[str, Any]:
        doc = (self.cls.__doc__ or "").strip().splitlines()
        return {"name": self.name, "kind": self.kind, "plugin": self.plugin, "distribution": self.distribution,
                "version": self.version, "summary": doc[0] if doc else ""}

    def provenance(self) -> dict[str, Any]:
        """What results record about where a class came from."""
        return {"plugin": self.plugin, "distribution": self.distribution, "version": self.version,
                "class": f"{self.cls.__module__}.{self.cls.__qualname__}"}


class PluginRegistry:
    """Names of models, datasets, trainers and converters, each mapped to its class.

    ``load_entry_points=False`` gives an empty registry for tests and for
    programs that register their plugins by hand with :meth:`register`.
    """

    def __init__(self, load_entry_points: bool = True) -> None:
        self.plugin_manager = pluggy.PluginManager("iqabench")
        self.plugin_manager.add_hookspecs(hookspecs)
        self.load_failures: dict[str, str] = {}
        self._distributions: dict[str, tuple[str | None, str | None]] = {}
        #: per kind, collected on first use
        self._entries: dict[str, dict[str, Entry]] | None = None
        if load_entry_points:
            self._load_entry_points()

    def _fail(self, plugin: str, message: str) -> None:
        earlier = self.load_failures.get(plugin)
        self.load_failures[plugin] = message if earlier is None or message in earlier else f"{earlier}; {message}"
        warnings.warn(f"iqabench plugin {plugin!r} is skipped: {message}", RuntimeWarning, stacklevel=3)

    def _load_entry_points(self) -> None:
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            try:
                plugin = entry_point.load()
            except Exception as exc:  # a broken third-party plugin must not stop the harness
                self._fail(entry_point.name, f"{entry_point.value} failed to import: {type(exc).__name__}: {exc}")
                continue
            if self.plugin_manager.is_registered(plugin):
                continue
            dist = entry_point.dist
            self._distributions[entry_point.name] = (dist.name if dist else None, dist.version if dist else None)
            try:
                self.register(plugin, name=entry_point.name)
            except PluginError as exc:
                self._fail(entry_point.name, str(exc))

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin module or object.

        A hook name iqabench does not have is an error naming it, and so is a function named like a hook
        (``iqabench_...``) without ``@hookimpl``, which pluggy would ignore without a word (pytest reports the
        functions with its prefix the same way).
        """
        label = name or getattr(plugin, "__name__", None) or repr(plugin)
        undecorated = [
            attribute for attribute in dir(plugin)
            if attribute.startswith("iqabench_") and inspect.isroutine(getattr(plugin, attribute, None))
            and self.plugin_manager.parse_hookimpl_opts(plugin, attribute) is None
        ]
        if undecorated:
            hints = "".join(did_you_mean(hook, HOOKS, n=1) for hook in undecorated if hook not in HOOKS)
            raise PluginError(
                f"plugin {label!r} defines {', '.join(f'{f}()' for f in undecorated)} without @hookimpl, so iqabench "
                f"would never call it. Decorate it: `from iqabench.api import hookimpl`, then `@hookimpl` above the "
                f"function.{hints} The hooks are: {', '.join(HOOKS)}."
            )
        unknown = [
            attribute for attribute in dir(plugin)
            if attribute not in HOOKS and self.plugin_manager.parse_hookimpl_opts(plugin, attribute) is not None
        ]
        if unknown:
            hints = "".join(did_you_mean(hook, HOOKS, n=1) for hook in unknown)
            raise PluginError(
                f"plugin {label!r} implements {', '.join(unknown)}, which iqabench does not have.{hints} "
                f"The hooks are: {', '.join(HOOKS)}."
            )
        self.plugin_manager.register(plugin, name=name)
        self._entries = None

    def _collect(self, kind: str) -> dict[str, Entry]:
        """The classes of one kind, calling only that kind's hooks (``iqabench list models`` imports no dataset)."""
        if self._entries is None:
            self._entries = {}
        if kind in self._entries:
            return self._entries[kind]
        entries: dict[str, Entry] = {}
        hook = getattr(self.plugin_manager.hook, f"iqabench_{kind}s")
        for impl in hook.get_hookimpls():
            plugin_name = self.plugin_manager.get_name(impl.plugin) or repr(impl.plugin)
            try:
                classes = list(impl.function() or ())
            except Exception as exc:
                self._fail(plugin_name, f"its iqabench_{kind}s hook raised {type(exc).__name__}: {exc}")
                continue
            distribution, version = self._distributions.get(plugin_name, (None, None))
            for cls in classes:
                problems = class_problems(kind, cls)
                if problems:
                    self._fail(plugin_name, "; ".join(problems))
                    continue
                if cls.name in entries:
                    other = entries[cls.name].plugin
                    raise DuplicateNameError(
                        f"{kind} name {cls.name!r} is registered by two plugins: {other!r} and {plugin_name!r}. "
                        "Uninstall one of them or rename the class's `name`."
                    )
                entries[cls.name] = Entry(cls.name, kind, cls, plugin_name, distribution, version)
        self._entries[kind] = entries
        return entries

    def names(self, kind: str) -> list[str]:
        return sorted(self._collect(kind))

    def entries(self, kind: str) -> list[Entry]:
        collected = self._collect(kind)
        return [collected[name] for name in sorted(collected)]

    def get(self, kind: str, name: str) -> Entry:
        """Look a name up; an unknown one raises with the available and closest names."""
        collected = self._collect(kind)
        if name in collected:
            return collected[name]
        available = sorted(collected)
        hint = did_you_mean(name, available)
        raise UnknownNameError(
            f"unknown {kind} {name!r}.{hint} Available {kind}s: {', '.join(available) or '(none)'}. "
            f"`iqabench list {kind}s` shows them."
        )

    def differentiable_models(self) -> list[str]:
        """Names of the registered models whose class declares them differentiable (a tensor path with gradients)."""
        return [entry.name for entry in self.entries("model") if entry.cls.traits.differentiable]

    def model(self, name: str) -> type:
        return self.get("model", name).cls

    def dataset(self, name: str) -> type:
        return self.get("dataset", name).cls

    def trainer(self, name: str) -> type:
        return self.get("trainer", name).cls


_DEFAULT: PluginRegistry | None = None


def default_registry() -> PluginRegistry:
    """The process-wide registry built from installed entry points."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = PluginRegistry()
    return _DEFAULT
