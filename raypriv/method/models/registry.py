"""One name -> builder registry, used for every model role (degrader, target, budget).

Modelled on timm's registry: builders are added under a unique name with metadata (family,
whether it is a tiny test entry), and callers list names by glob pattern and build by name.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable

import torch.nn as nn

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one entry."""

    name: str
    role: str
    family: str
    builder: Builder
    tiny: bool = False
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


class Registry:
    """Name -> `ModelSpec` for one role; names are unique within the registry."""

    def __init__(self, role: str) -> None:
        self.role = role
        self._specs: dict[str, ModelSpec] = {}

    def add(
        self,
        name: str,
        builder: Builder,
        *,
        family: str,
        tiny: bool = False,
        description: str = "",
        **defaults: Any,
    ) -> None:
        """Register `builder` under `name`; `defaults` are keyword arguments bound at build time."""
        if name in self._specs:
            raise ValueError(f"{self.role} model {name!r} is already registered")
        self._specs[name] = ModelSpec(name, self.role, family, builder, tiny, description, dict(defaults))

    def spec(self, name: str) -> ModelSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.role} model {name!r}; registered {self.role} models: "
                f"{', '.join(sorted(self._specs))}"
            ) from None

    def names(self, pattern: str = "*", *, family: str | None = None, include_tiny: bool = True) -> list[str]:
        """Sorted names matching the glob `pattern` (and `family`, when given)."""
        return sorted(
            s.name
            for s in self._specs.values()
            if fnmatch.fnmatchcase(s.name, pattern)
            and (family is None or s.family == family)
            and (include_tiny or not s.tiny)
        )

    def families(self) -> list[str]:
        return sorted({s.family for s in self._specs.values()})

    def build(self, name: str, **kwargs: Any) -> nn.Module:
        spec = self.spec(name)
        return spec.builder(**{**spec.defaults, **kwargs})

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __len__(self) -> int:
        return len(self._specs)
