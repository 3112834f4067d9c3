import sys

from rtdecode.cli import main

sys.exit(main())
