from .core import main

raise SystemExit(main())
