"""twinlab — digital twins of battery electrodes from FIB-SEM / EBAC images."""

__version__ = "0.1.0"
