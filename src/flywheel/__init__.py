"""flywheel: ship documentation-QA agents to production and keep them improving."""

__version__ = "0.1.0"

__all__ = ["__version__"]
