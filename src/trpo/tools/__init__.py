"""Tools that work on run directories: plot, record, export, compare, tune."""
