"""GAN variants: one module each; importing this package registers them all.

Adding a variant is one file here and one import line below; nothing in bench/ changes.
"""

from variants import dcgan, mlp_gan  # noqa: F401
from variants import wgan  # noqa: F401
from variants import cgan  # noqa: F401
