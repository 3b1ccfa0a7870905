"""raypriv: learn privacy-preserving video degradations (f_d) and search their trade-offs on Ray.

The public entry points live in submodules: `raypriv.method.data.build_dataset` for data and
`raypriv.method.models.create_model` / `raypriv.method.models.list_models` for the model registries.
"""

__version__ = "0.1.0"
