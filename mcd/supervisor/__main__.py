import sys

from mcd.supervisor.server import main

sys.exit(main())
