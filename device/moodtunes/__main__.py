import sys

from moodtunes.cli import main

sys.exit(main())
