import sys

from tests.bench.planner.run import main

sys.exit(main())
