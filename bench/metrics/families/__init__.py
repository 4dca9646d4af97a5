"""The registered metrics, one module per data family.

Importing this package registers every metric in `bench.registry.metrics`. Each module serves one
kind of data and says so in its metrics' `families`: points.py (2-D mixtures), builtin_images.py
(built-in labelled images, in the domain extractor's feature space), natural_images.py (Inception
and VGG16 through torch-fidelity), pixels.py (pixel-space diversity of any images), conditional.py
(class-conditional runs on built-in data), natural_conditional.py (the same on natural images, on
Inception features), discriminator.py (the probe on a run's D) and memorization.py (nearest
training images, MiFID and the data-copying share; opt-in). base.py holds the Metric
base class and the sample counts of the protocols.
"""

from bench.metrics.families import (builtin_images, conditional, discriminator, memorization,  # noqa: F401
                                    natural_conditional, natural_images, pixels, points)
