"""Turning run directories into tables, figures and the section-5 amplification analysis (``cli.py report``)."""
