"""`python -m seqtext` runs the command line."""

from seqtext.cli import app

app(prog_name="seqtext")
