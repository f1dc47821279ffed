"""What both sides of Herald stand on: settings, the clock, problems with file and line, the two languages,
YAML as editors write it, the database (engine, base of every table, the one migration history) and the
terminal. It imports nothing of the people side, the publishing side or the web."""
