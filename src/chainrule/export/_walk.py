"""The modules of a chainrule model, as the translators to other libraries see them.

A translator knows chainrule's own classes and nothing else: a user's module (or a subclass
of a chainrule class, which may compute something else) is refused by name, since what its
``forward`` computes cannot be read off it.
"""

from __future__ import annotations

from ..errors import InputError
from ..layers import Sequential


def children(model, where: str) -> list[tuple[str, object]]:
    """``[(path, module)]`` of ``model``'s own modules (``"modules.0"``, ...); a single
    chainrule module (not a ``Sequential``) counts as a model of that one module."""
    if type(model) is Sequential:
        return [(f"modules.{i}", m) for i, m in enumerate(model.modules)]
    if isinstance(model, Sequential):
        raise unsupported(where, "the model", model, ["chainrule.Sequential"])
    return [("modules.0", model)]


def leaves(model, where: str) -> list[tuple[str, object]]:
    """``[(path, module)]`` of every module that is not a ``Sequential``, in the order
    forward runs them; nested ``Sequential`` paths read ``"modules.0.modules.1"``."""
    out = []
    for path, m in children(model, where):
        if type(m) is Sequential:
            out += [(f"{path}.{sub}", leaf) for sub, leaf in leaves(m, where)]
        else:
            out.append((path, m))
    return out


def unsupported(where: str, path: str, module, known) -> InputError:
    """The error for a module ``where`` cannot translate, naming it and what it can."""
    cls = type(module)
    return InputError(f"{where} cannot translate {path}, a {cls.__module__}.{cls.__qualname__}: "
                      f"expected one of {', '.join(known)} (those classes themselves, not "
                      "subclasses or other modules, whose forward could compute anything)")
