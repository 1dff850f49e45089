import sys

from telegraph.cli import main

sys.exit(main())
