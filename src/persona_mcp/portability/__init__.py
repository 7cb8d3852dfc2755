"""Moving state in and out: the state file, Character Cards, visual context."""
