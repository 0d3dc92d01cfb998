"""napari front end for twinlab."""

__version__ = "0.1.0"
