"""Sphinx configuration of the datalad-nested-worktrees documentation"""

import argparse
from pathlib import Path

import datalad_worktree

project = 'datalad-nested-worktrees'
author = 'The datalad-nested-worktrees developers'
copyright = author
release = datalad_worktree.__version__
version = release

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.autosummary',
    'sphinx.ext.napoleon',
    'myst_parser',
]
# stub pages of the commands in reference.rst go to generated/
autosummary_generate = True
templates_path = ['_templates']
exclude_patterns = ['_build']
html_theme = 'alabaster'


def write_cli_help(app):
    """Write the ``--help`` of every command of the suite, without its
    description (autodoc shows that), to generated/cli/<python name>.txt"""
    from datalad.cli.interface import get_cmdline_command_name
    from datalad.cli.parser import setup_parser
    from datalad.interface.base import get_api_name

    outdir = Path(app.srcdir, 'generated', 'cli')
    outdir.mkdir(parents=True, exist_ok=True)
    parsers = setup_parser(
        ['datalad', '--help'],
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(
            prog, width=79),
        return_subparsers=True)
    for spec in datalad_worktree.command_suite[1]:
        parser = parsers[get_cmdline_command_name(spec)]
        parser.description = parser.epilog = None
        text = parser.format_help()
        target = outdir / f'{get_api_name(spec)}.txt'
        if not target.exists() or target.read_text() != text:
            target.write_text(text)


def setup(app):
    app.connect('builder-inited', write_cli_help)
