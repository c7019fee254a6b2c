"""The application layer: one module per use case, with its own command and result types.

Use cases receive their ports (store, channels, sealer, clock) as arguments; they import the
policy core and never HTTP or SQL.
"""
