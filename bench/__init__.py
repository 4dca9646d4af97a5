"""GAN Bench: a grid of GAN runs trained by one shared loop, evaluated and reported."""

__version__ = "0.1.0"
