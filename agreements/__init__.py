"""The policy core: agreements, the data dictionary, decisions and minimisation (pure)."""
