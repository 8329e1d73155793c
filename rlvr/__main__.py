"""``python -m rlvr`` runs the command-line interface."""

from rlvr.cli import main

raise SystemExit(main())
