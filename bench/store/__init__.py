"""Run folders on disk: the one validated reader and atomic writes (runs.py), claims between
processes (locks.py), and checkpoints (checkpoint.py). Everything that reads or writes a run's files
goes through here."""
