"""Figures, tables and the HTML report, read from the sweep's Parquet tables.

This package depends only on pandas/pyarrow/matplotlib/scipy so results can be studied on any machine,
without the training stack; the one exception (Figure 7's image gallery) imports the dataset loader lazily.
"""
