"""Readers and writers: the eqglb scenario folder format and real-data formats.

Each module is imported where used, e.g. ``from eqglb.io.scenario_format import read_scenario``.
"""
