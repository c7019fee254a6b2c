"""The Gatehouse service: everything with I/O that is not a partner channel."""
