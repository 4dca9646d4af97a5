"""`bench speed`: the shared loop against the reference DCGAN loop, and the effect of each fast path.

measure.py trains the shared loop (bench/train/loop.py) on synthetic in-memory images and reads its own
per-window timings; reference.py is the loop it is compared with; command.py prints the tables.
"""
