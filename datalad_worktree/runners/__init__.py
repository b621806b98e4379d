"""Processes: the one place that starts git, its lock files, tool versions"""
