"""The one version string of edgeseal (the distribution, the runtime and the CLI all report it)."""

__version__ = "0.1.0"
