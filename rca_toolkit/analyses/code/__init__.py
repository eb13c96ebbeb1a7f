"""The code against the database: phantom columns (drift) and migration history."""
