"""``python -m trio_lingma.simulator start --workDir DIR --socketPort N --httpPort M``."""

from .cli import main

raise SystemExit(main())
