"""The per-dataset work that changes things; returns outcomes, never
result records"""
