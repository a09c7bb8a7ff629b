from amber.cli import main

raise SystemExit(main())
