"""`python -m directo.cli`: how `directo run` starts its worker with the same interpreter."""

from directo.cli import main

main()
