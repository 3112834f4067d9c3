import sys

from rtdecode.cli.main import main

sys.exit(main())
