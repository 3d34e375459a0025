"""``python -m genimg_lib``: the book's command line (`genimg_lib.cli`)."""

from genimg_lib.cli import main

raise SystemExit(main())
