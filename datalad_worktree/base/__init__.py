"""The bottom layer: outcomes of work on a dataset, and path safety; no internal imports"""
