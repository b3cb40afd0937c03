"""Checks: plain functions from observed state to a list of problems (empty = conformant).

Each problem is one sentence that names the object and what is wrong with it.
"""
