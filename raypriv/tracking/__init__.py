"""Tracking: MLflow runs of a sweep (one parent, one child per trial) and the Pareto report.

- `pareto`: Pareto selection and hypervolume over (A_T ↑, A_B^N ↓), plain numpy, no plotting.
- `store`: where the embedded stores live, and the MLflow experiment / parent / child runs.
- `report`: the report a sweep leaves on its parent run (pareto.csv, .png, .html, hypervolume,
  the front's configs), rebuilt from MLflow alone by `raypriv pareto`.

MLflow is imported only inside `store` and `report`, so importing this package starts nothing.
"""
