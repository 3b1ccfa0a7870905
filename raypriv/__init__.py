"""raypriv: learn privacy-preserving video degradations (f_d) and search their trade-offs on Ray.

The public entry points live in submodules: `raypriv.data.build_dataset` for data and
`raypriv.models.create_model` / `raypriv.models.list_models` for the model registries.
"""

__version__ = "0.1.0"
