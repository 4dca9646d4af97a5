"""What the user asked for: grid files and --set overrides parsed into frozen, range-checked configs
(schema.py), grids expanded into ordered runs (grid.py), the run id (identity.py), `published:`
tables (published.py). Pure: nothing here trains, reads a run folder or imports torch."""
