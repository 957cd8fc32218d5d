"""`python -m uploader` runs the tuscam-upload command."""

from uploader.cli import main

raise SystemExit(main())
