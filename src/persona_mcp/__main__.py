from persona_mcp.cli import main

raise SystemExit(main())
