from siamtrack.cli import main

raise SystemExit(main())
