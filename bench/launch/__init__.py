"""Which runs still need work and where they train: planning and executing a grid (scheduler.py),
local, dask and ray backends (backends.py), and what `bench status` and the progress line show."""
