"""Partner channels, one module each, all behind the `Channel` protocol."""
