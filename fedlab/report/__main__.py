"""``python -m fedlab.report``: tables, paired intervals and plots from run folders."""

import sys

from fedlab.report.cli import main

sys.exit(main())
