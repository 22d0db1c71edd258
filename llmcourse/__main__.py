import sys

from llmcourse.cli.main import main

sys.exit(main())
