"""`python -m seqtext` runs the command line."""

from seqtext.cli import main

main()
