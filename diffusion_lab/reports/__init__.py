"""Reporting over finished runs: run comparison pages, sweep summaries (also as a Hydra callback).

Reads what runs wrote into their own folders; never trains, samples or opens a Lightning module.
"""
