"""The rules of the plugin contracts, checked early with a message that names the rule.

A rule broken by a plugin used to surface late: an option never stored as
``self.<name>`` failed when results were written after the scoring, an
unpicklable preprocessor failed when the first decode worker started, a model
that refused ``device`` failed on the first ``--device cuda``. Here each rule
is checked as soon as it can be:

* when the class is registered (:func:`class_problems`, called by the registry
  for every class a plugin's hook returns: a class that breaks a rule is
  skipped with a warning, the reason kept for ``iqabench list``);
* when the model is built (``create_model``, a suite, ``iqabench score``...) (:func:`model_problems`: what only an
  instance can tell, such as whether its preprocessor can be sent to a worker).

``docs/plugins.md`` lists the rules under the names these messages use.
"""

from __future__ import annotations

import ast
import functools
import inspect
import linecache
import pickle
import re
import textwrap
from typing import Any

from iqabench.contracts.params import accepted_options

#: the declarations that moved into ``Model.traits``; a class attribute of one of these names is a mistake
TRAIT_NAMES = ("preprocessing", "differentiable", "score_in_workers", "generative", "samples", "new_tokens_options",
               "random_weights")


def _base_classes() -> dict[str, type]:
    from iqabench.contracts.converter import Converter
    from iqabench.contracts.dataset import Dataset
    from iqabench.contracts.model import Model
    from iqabench.contracts.trainer import Trainer

    return {"model": Model, "dataset": Dataset, "trainer": Trainer, "converter": Converter}


def class_problems(kind: str, cls: Any) -> list[str]:
    """Why ``cls`` cannot be registered as a ``kind`` (empty when it can); each message names its rule."""
    base = _base_classes()[kind]
    if not isinstance(cls, type) or not issubclass(cls, base):
        return [f"{cls!r} is not a subclass of iqabench.{base.__name__}"]
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.strip():
        return [f"{cls.__qualname__} has no `name` (a non-empty string class attribute)"]
    what = f"{kind} {name!r} ({cls.__qualname__})"
    checks = {"model": _model_class_problems, "dataset": _dataset_class_problems,
              "trainer": _trainer_class_problems, "converter": _converter_class_problems}[kind]
    return [f"{what} {problem}" for problem in checks(cls, base)]


def _model_class_problems(cls: type, base: type) -> list[str]:
    from iqabench.contracts.model import ModelTraits

    problems = []
    score_range = getattr(cls, "score_range", None)
    if not (isinstance(score_range, tuple) and len(score_range) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in score_range)
            and score_range[0] < score_range[1]):
        problems.append("has no `score_range` (a (low, high) tuple of numbers, low below high)")
    if not isinstance(getattr(cls, "lower_better", None), bool):
        problems.append("sets `lower_better` to something other than True or False")
    for klass in cls.__mro__:
        if klass is base:
            break
        stray = [attribute for attribute in TRAIT_NAMES if attribute in vars(klass)
                 and not isinstance(vars(klass)[attribute], property)]
        if stray:
            example = ", ".join(f"{attribute}={vars(klass)[attribute]!r}" for attribute in stray)
            problems.append(f"sets {', '.join(f'`{a}`' for a in stray)} as a class attribute; declarations go in "
                            f"one place: `traits = ModelTraits({example})` (rule: declarations in `traits`)")
    traits = getattr(cls, "traits", None)
    if not isinstance(traits, ModelTraits):
        problems.append("has `traits` that is not a ModelTraits (rule: declarations in `traits`)")
        return problems
    if traits.differentiable and cls.score_pixels is base.score_pixels:
        problems.append("declares `differentiable` but has no `score_pixels` (rule: a differentiable model has a "
                        "tensor path)")
    accepted = accepted_options(cls)
    missing = [argument for argument in ("device", "dtype") if argument not in accepted]
    if missing:
        problems.append(f"does not accept {' and '.join(f'`{m}`' for m in missing)} as a keyword of __init__ (rule: "
                        "every model accepts device and dtype, even one that ignores them)")
    unknown = [option for option in traits.new_tokens_options if option not in accepted]
    if unknown:
        problems.append(f"names {', '.join(unknown)} in `traits.new_tokens_options` but __init__ takes no such option")
    problems.extend(_unstored(cls))
    return problems


def _dataset_class_problems(cls: type, base: type) -> list[str]:
    problems = [f"has no `{attribute}` (a string class attribute)" for attribute in ("title", "default_dir")
                if not isinstance(getattr(cls, attribute, None), str)]
    if "root" not in accepted_options(cls):
        problems.append("does not accept `root` in __init__ (rule: a dataset is pointed at its folder by `root`)")
    return problems


def _trainer_class_problems(cls: type, base: type) -> list[str]:
    if not isinstance(getattr(cls, "model", None), str):
        return ["has no `model` (the name of the model it trains)"]
    return _unstored(cls)


def _converter_class_problems(cls: type, base: type) -> list[str]:
    if not isinstance(getattr(cls, "reads_pickle", None), bool):
        return ["sets `reads_pickle` to something other than True or False"]
    return []


def _unstored(cls: type) -> list[str]:
    names = unstored_options(cls)
    if not names:
        return []
    shown = ", ".join(f"`self.{name} = {name}`" for name in names)
    return [f"never stores {', '.join(repr(n) for n in names)} under its own name: add {shown} to __init__ (rule: "
            "every __init__ option is stored as self.<name>, so that results record the settings)"]


@functools.cache
def unstored_options(cls: type) -> tuple[str, ...]:
    """The ``__init__`` keywords of ``cls`` that no method of the class or its bases assigns to ``self``.

    Read from the source of the methods: an assignment ``self.<name> = ...`` (or ``setattr(self, "<name>",
    ...)``) in any method of the classes of the hierarchy, or a property of that name, counts as storing it.
    Only the methods are read (a few lines each, not the whole module), first as text, then parsed for the
    options the text did not show (``self.a, self.b = ...``), so registering stays fast. Where a source cannot
    be read (a compiled class) or stores names it computes (``setattr(self, key, value)`` in a loop), nothing
    is reported here; :func:`model_problems` catches the omission on the built model (``config()``).
    """
    wanted = set(accepted_options(cls))
    sources: list[str] = []
    for klass in cls.__mro__:
        if klass is object or klass.__module__ == "abc":
            continue
        wanted -= {name for name, value in vars(klass).items() if isinstance(value, property)}
        for function in _methods(klass):
            source = _source(function)
            if source is None:
                return ()
            sources.append(source)
    text = "".join(sources)
    if _DYNAMIC.search(text):  # setattr(self, key, ...) in a loop: only the built model can tell (model_problems)
        return ()
    wanted -= set(_ASSIGNED.findall(text)) | set(_SETATTR.findall(text))
    if wanted:  # the rarer forms: tuple targets, subscripted or annotated in odd ways
        for source in sources:
            try:
                tree = ast.parse(textwrap.dedent(source))
            except SyntaxError:  # a lambda on a line with other code: not where options are stored
                continue
            wanted -= _self_attributes(tree)
    return tuple(name for name in accepted_options(cls) if name in wanted)


_ASSIGNED = re.compile(r"\bself\.([A-Za-z_]\w*)\s*(?::[^=\n]+)?=(?!=)")
_SETATTR = re.compile(r"\bsetattr\(\s*self\s*,\s*[\"']([A-Za-z_]\w*)[\"']")
_DYNAMIC = re.compile(r"\bsetattr\(\s*self\s*,\s*(?![\"'])|\bvars\(\s*self\s*\)\.update\(|\bself\.__dict__\.update\(")


def _source(function: Any) -> str | None:
    """A function's source from its code object (``inspect.getsource`` searches ``sys.modules`` first: slow)."""
    code = function.__code__
    lines = linecache.getlines(code.co_filename)
    if not lines:
        return None
    positions = getattr(code, "co_positions", None)  # Python 3.11+: where each instruction's source ends
    if positions is not None:
        last = max((end for _, end, _, _ in positions() if end is not None), default=code.co_firstlineno)
        return "".join(lines[code.co_firstlineno - 1 : last])
    return "".join(inspect.getblock(lines[code.co_firstlineno - 1 :]))


def _methods(klass: type) -> list[Any]:
    """The functions defined in the body of ``klass`` (decorators and property accessors unwrapped)."""
    functions = []
    for value in vars(klass).values():
        if isinstance(value, (classmethod, staticmethod)):
            value = value.__func__
        elif isinstance(value, property):
            value = value.fset
        function = inspect.unwrap(value) if callable(value) else None
        if inspect.isfunction(function) and function.__qualname__.startswith(f"{klass.__qualname__}."):
            functions.append(function)
    return functions


def _self_attributes(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr"
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
              and isinstance(node.args[1].value, str)):
            names.add(node.args[1].value)
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Attribute) and isinstance(leaf.value, ast.Name) and leaf.value.id == "self":
                    names.add(leaf.attr)
    return names


def model_problems(model: Any) -> list[str]:
    """What is wrong with a built model that its class could not show; each message names its rule."""
    from iqabench.contracts.model import Model, ModelTraits

    what = f"model {model.name!r} ({type(model).__qualname__})"
    if not isinstance(model.traits, ModelTraits):
        return [f"{what} set `self.traits` to something other than a ModelTraits (rule: declarations in `traits`)"]
    problems = []
    options = accepted_options(type(model))
    stray = [name for name in TRAIT_NAMES if name in vars(model) and name not in options]
    if stray:
        example = ", ".join(f"{name}=..." for name in stray)
        problems.append(f"{what} sets {', '.join(f'self.{name}' for name in stray)}, which iqabench does not read; "
                        f"refine the declaration instead: self.traits = dataclasses.replace(self.traits, {example}) "
                        "(rule: declarations in `traits`)")
    if model.traits.differentiable and type(model).score_pixels is Model.score_pixels:
        problems.append(f"{what} declares `differentiable` but has no `score_pixels` (rule: a differentiable model "
                        "has a tensor path)")
    try:
        model.config()
    except AttributeError as exc:
        problems.append(f"{what}: {exc} (rule: every __init__ option is stored as self.<name>)")
    for method in ("preprocessor", "collator"):
        function = getattr(model, method)()
        try:
            pickle.dumps(function)
        except Exception as exc:
            problems.append(
                f"{what}: {method}() returned {function!r}, which cannot be pickled ({type(exc).__name__}: {exc}); "
                "decode workers receive it pickled: return a module-level function or an instance of a module-level "
                f"class (rule: a picklable {method})"
            )
    return problems
