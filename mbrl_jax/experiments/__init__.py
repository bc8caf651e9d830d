"""Experiment runners: data collection, planning demos, the comparison runner."""
