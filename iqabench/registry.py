"""Discovery of plugins through the ``iqabench`` entry-point group.

Built-in plugins live in ``plugins/`` (installed as ``iqabench_plugins``) and
register through the very same entry-point group a third-party package uses,
so the core never names a particular model, dataset or trainer.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

import pluggy

from iqabench import hookspecs
from iqabench.errors import DuplicateNameError, UnknownNameError, did_you_mean

ENTRY_POINT_GROUP = "iqabench"
KINDS = ("model", "dataset", "trainer", "converter")

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered class and the plugin that provided it."""

    name: str
    kind: str
    cls: type[T]
    plugin: str

    def describe(self) -> dict[str, Any]:
        info = {"name": self.name, "kind": self.kind, "plugin": self.plugin}
        doc = (self.cls.__doc__ or "").strip().splitlines()
        info["summary"] = doc[0] if doc else ""
        return info


class PluginRegistry:
    """Names of models, datasets and trainers, each mapped to its class.

    ``load_entry_points=False`` gives an empty registry for tests and for
    programs that register their plugins by hand with :meth:`register`.
    """

    def __init__(self, load_entry_points: bool = True) -> None:
        self.plugin_manager = pluggy.PluginManager("iqabench")
        self.plugin_manager.add_hookspecs(hookspecs)
        self.load_failures: dict[str, str] = {}
        self._entries: dict[str, dict[str, Entry]] | None = None
        if load_entry_points:
            self._load_entry_points()

    def _load_entry_points(self) -> None:
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            try:
                plugin = entry_point.load()
            except Exception as exc:  # a broken third-party plugin must not stop the harness
                message = f"{type(exc).__name__}: {exc}"
                self.load_failures[entry_point.name] = message
                warnings.warn(
                    f"iqabench plugin {entry_point.name!r} ({entry_point.value}) failed to import and is "
                    f"skipped: {message}",
                    RuntimeWarning,
                    stacklevel=2,
                )
                continue
            if self.plugin_manager.is_registered(plugin):
                continue
            self.plugin_manager.register(plugin, name=entry_point.name)

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin module or object by hand."""
        self.plugin_manager.register(plugin, name=name)
        self._entries = None

    def _collect(self) -> dict[str, dict[str, Entry]]:
        if self._entries is not None:
            return self._entries
        entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        for kind in KINDS:
            hook = getattr(self.plugin_manager.hook, f"iqabench_{kind}s")
            for impl in hook.get_hookimpls():
                plugin_name = self.plugin_manager.get_name(impl.plugin) or repr(impl.plugin)
                try:
                    classes = impl.function()
                except Exception as exc:
                    self.load_failures[plugin_name] = f"{type(exc).__name__}: {exc}"
                    warnings.warn(
                        f"iqabench plugin {plugin_name!r} failed while listing its {kind}s and is skipped: {exc}",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    continue
                for cls in classes or ():
                    name = cls.name
                    if name in entries[kind]:
                        other = entries[kind][name].plugin
                        raise DuplicateNameError(
                            f"{kind} name {name!r} is registered by two plugins: {other!r} and {plugin_name!r}. "
                            "Uninstall one of them or rename the class's `name`."
                        )
                    entries[kind][name] = Entry(name=name, kind=kind, cls=cls, plugin=plugin_name)
        self._entries = entries
        return entries

    def names(self, kind: str) -> list[str]:
        return sorted(self._collect()[kind])

    def entries(self, kind: str) -> list[Entry]:
        collected = self._collect()[kind]
        return [collected[name] for name in sorted(collected)]

    def get(self, kind: str, name: str) -> Entry:
        """Look a name up; an unknown one raises with the available and closest names."""
        collected = self._collect()[kind]
        if name in collected:
            return collected[name]
        available = sorted(collected)
        hint = did_you_mean(name, available)
        raise UnknownNameError(
            f"unknown {kind} {name!r}.{hint} Available {kind}s: {', '.join(available) or '(none)'}. "
            f"`iqabench list {kind}s` shows them."
        )

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
