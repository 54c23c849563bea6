"""One module per experiment; each returns data (dicts / arrays), never draws."""
