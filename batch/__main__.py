"""python -m sanrt.batch: sanrt-batch (batch/job.py)."""
import sys

from sanrt.batch.job import main

sys.exit(main())
