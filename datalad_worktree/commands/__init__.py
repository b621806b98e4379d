"""What the user calls: one module per command, with its documentation,
parameters, validation and the records it reports"""
