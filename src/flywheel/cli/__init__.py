"""The `flywheel` command line (thin: parsing and printing; the work lives in the stage packages)."""

__all__: list[str] = []
